package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// stepCommit commits a transaction and expects its rows on another connection.
func stepCommit(ctx context.Context, t *tour) (string, error) {
	err := t.engine.Transaction(ctx, func(ctx context.Context) error {
		return t.exec(ctx,
			piccolo.Querystring{SQL: insertManager, Args: []any{"Rob"}},
			piccolo.Querystring{SQL: insertBand, Args: []any{"Gophers", "Rob", 500}},
			piccolo.Querystring{SQL: "UPDATE band SET popularity = popularity + $1 WHERE name = $2", Args: []any{100, "Gophers"}},
		)
	})
	if err != nil {
		return "", err
	}
	if _, err := t.show(ctx, bandsView); err != nil {
		return "", err
	}
	// Read back on another connection of the pool: only committed rows show.
	var popularity int32
	if err := t.scalar(ctx, &popularity, "SELECT popularity FROM band WHERE name = $1", "Gophers"); err != nil {
		return "", fmt.Errorf("the committed band: %w", err)
	}
	if popularity != 600 {
		return "", fmt.Errorf("the Gophers' popularity is %d, want 600", popularity)
	}
	return "committed: the Gophers and their manager Rob are in, popularity 600", nil
}

// stepRollback fails a transaction halfway and expects the server's error
// back and the table as it was.
func stepRollback(ctx context.Context, t *tour) (string, error) {
	before, err := queryTable(ctx, t.engine, piccolo.Querystring{SQL: bandsView})
	if err != nil {
		return "", err
	}
	t.sql.flush()
	err = t.engine.Transaction(ctx, func(ctx context.Context) error {
		return t.exec(ctx,
			piccolo.Querystring{SQL: "UPDATE band SET popularity = popularity * 2"},
			piccolo.Querystring{SQL: insertBand, Args: []any{"Pythonistas", "Guido", 1}},
		)
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.UniqueViolation {
		return "", fmt.Errorf("the transaction returned %v, want a unique violation (23505)", err)
	}
	t.say("Transaction returned: %s", t.st.red(err.Error()))
	after, err := t.show(ctx, bandsView)
	if err != nil {
		return "", err
	}
	if !slices.EqualFunc(before.rows, after.rows, slices.Equal) {
		return "", fmt.Errorf("bands changed although the transaction rolled back: %v, then %v", before.rows, after.rows)
	}
	return "rolled back: SQLSTATE 23505 came back, every band's popularity is unchanged", nil
}

// errCastleFull is the nested block's own failure in stepNestedSavepoint.
var errCastleFull = errors.New("fully booked: Castle Ruins")

// stepNestedSavepoint nests a failing and a succeeding block as savepoints
// and expects only the failing block's row to be gone.
func stepNestedSavepoint(ctx context.Context, t *tour) (string, error) {
	var inner error
	err := t.engine.Transaction(ctx, func(ctx context.Context) error {
		if err := t.exec(ctx, piccolo.Querystring{SQL: insertVenue, Args: []any{"The Garage", 300}}); err != nil {
			return err
		}
		inner = t.engine.Transaction(ctx, func(ctx context.Context) error {
			if err := t.exec(ctx, piccolo.Querystring{SQL: insertVenue, Args: []any{"Castle Ruins", 800}}); err != nil {
				return err
			}
			return errCastleFull
		}, piccolo.Nesting(piccolo.NestSavepoint))
		if !errors.Is(inner, errCastleFull) {
			return fmt.Errorf("the failing nested block returned %v, want %v", inner, errCastleFull)
		}
		// A nested block that succeeds releases its savepoint.
		return t.engine.Transaction(ctx, func(ctx context.Context) error {
			return t.exec(ctx, piccolo.Querystring{SQL: insertVenue, Args: []any{"Rooftop Bar", 150}})
		}, piccolo.Nesting(piccolo.NestSavepoint))
	})
	if err != nil {
		return "", err
	}
	t.say("The first nested block returned: %s", t.st.red(inner.Error()))
	res, err := t.show(ctx, venuesView)
	if err != nil {
		return "", err
	}
	var names []string
	for _, row := range res.rows {
		names = append(names, row[1])
	}
	if want := []string{"Amazing Venue", "Small Venue", "The Garage", "Rooftop Bar"}; !slices.Equal(names, want) {
		return "", fmt.Errorf("venues %v, want %v", names, want)
	}
	return "the outer transaction committed The Garage and Rooftop Bar; Castle Ruins was rolled back to its savepoint", nil
}

// stepSavepoints uses explicit savepoints and expects the rolled-back
// discount gone and the released insert kept.
func stepSavepoints(ctx context.Context, t *tour) (string, error) {
	txCtx, tx, err := t.engine.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(txCtx) // after Commit it does nothing
	if err := t.exec(txCtx, piccolo.Querystring{SQL: insertTicketAt, Args: []any{"Amazing Venue", "75.00"}}); err != nil {
		return "", err
	}
	discount, err := tx.Savepoint(txCtx, "before_discount")
	if err != nil {
		return "", err
	}
	if err := t.exec(txCtx, piccolo.Querystring{SQL: "UPDATE ticket SET price = price / 2"}); err != nil {
		return "", err
	}
	t.say("Inside the transaction, after the discount:")
	if _, err := t.show(txCtx, ticketsView); err != nil {
		return "", err
	}
	if err := discount.RollbackTo(txCtx); err != nil {
		return "", err
	}
	extra, err := tx.Savepoint(txCtx, "") // a generated name
	if err != nil {
		return "", err
	}
	if err := t.exec(txCtx, piccolo.Querystring{SQL: insertTicketAt, Args: []any{"Small Venue", "30.00"}}); err != nil {
		return "", err
	}
	if err := extra.Release(txCtx); err != nil {
		return "", err
	}
	if err := tx.Commit(txCtx); err != nil {
		return "", err
	}
	t.say("After rolling back to %s, releasing %s and committing:", discount.Name(), extra.Name())
	res, err := t.show(ctx, ticketsView)
	if err != nil {
		return "", err
	}
	var prices []string
	for _, row := range res.rows {
		prices = append(prices, row[2])
	}
	if want := []string{"50.00", "50.00", "25.50", "75.00", "30.00"}; !slices.Equal(prices, want) {
		return "", fmt.Errorf("ticket prices %s, want %s", strings.Join(prices, " "), strings.Join(want, " "))
	}
	return "the discount was rolled back to its savepoint; both new tickets were committed", nil
}
