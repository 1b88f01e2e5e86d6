package main

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/query"
)

// stepCommit commits a transaction and expects its rows once it is over.
func stepCommit(ctx context.Context, t *tour) (string, error) {
	err := t.engine.Transaction(ctx, func(ctx context.Context) error {
		rob := &Manager{Name: "Rob"}
		if err := Managers.Insert(rob).Run(ctx, t.engine); err != nil {
			return err
		}
		gophers := &Band{Name: "Gophers", Manager: &rob.ID, Popularity: 500}
		if err := Bands.Insert(gophers).Run(ctx, t.engine); err != nil {
			return err
		}
		gophers.Popularity += 100
		return Bands.Save(gophers).Run(ctx, t.engine) // a saved object: an upsert by primary key
	})
	if err != nil {
		return "", err
	}
	if _, err := selectRows(ctx, t, Bands, Bands.Select().OrderBy(BandID.Asc())); err != nil {
		return "", err
	}
	// Read back outside the transaction: only committed rows show.
	gophers, err := Bands.Objects().Get(ctx, t.engine, BandName.Eq("Gophers"))
	if err != nil {
		return "", fmt.Errorf("the committed band: %w", err)
	}
	if gophers.Popularity != 600 {
		return "", fmt.Errorf("the Gophers' popularity is %d, want 600", gophers.Popularity)
	}
	if gophers.Manager == nil {
		return "", errors.New("the Gophers have no manager, want Rob")
	}
	rob, err := Managers.Objects().Get(ctx, t.engine, ManagerID.Eq(*gophers.Manager))
	if err != nil || rob.Name != "Rob" {
		return "", fmt.Errorf("the Gophers' manager: %+v, %v; want Rob", rob, err)
	}
	return "committed: the Gophers and their manager Rob are in, popularity 600", nil
}

// stepRollback fails a transaction halfway and expects the server's error
// back and the table as it was.
func stepRollback(ctx context.Context, t *tour) (string, error) {
	allBands := Bands.Select().OrderBy(BandID.Asc())
	before, err := allBands.All(ctx, t.engine)
	if err != nil {
		return "", err
	}
	t.sql.flush()
	err = t.engine.Transaction(ctx, func(ctx context.Context) error {
		if _, err := Bands.Update(BandPopularity.SetSQL(`"popularity" * $1`, 2)).All().Run(ctx, t.engine); err != nil {
			return err
		}
		return Bands.Insert(&Band{Name: "Pythonistas", Popularity: 1}).Run(ctx, t.engine)
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.UniqueViolation {
		return "", fmt.Errorf("the transaction returned %v, want a unique violation (23505)", err)
	}
	t.say("Transaction returned: %s", t.st.red(err.Error()))
	after, err := selectRows(ctx, t, Bands, allBands)
	if err != nil {
		return "", err
	}
	if !reflect.DeepEqual(before, after) {
		return "", fmt.Errorf("bands changed although the transaction rolled back: %+v, then %+v", before, after)
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
		if err := Venues.Insert(&Venue{Name: "The Garage", Capacity: 300}).Run(ctx, t.engine); err != nil {
			return err
		}
		inner = t.engine.Transaction(ctx, func(ctx context.Context) error {
			if err := Venues.Insert(&Venue{Name: "Castle Ruins", Capacity: 800}).Run(ctx, t.engine); err != nil {
				return err
			}
			return errCastleFull
		}, piccolo.Nesting(piccolo.NestSavepoint))
		if !errors.Is(inner, errCastleFull) {
			return fmt.Errorf("the failing nested block returned %v, want %v", inner, errCastleFull)
		}
		// A nested block that succeeds releases its savepoint.
		return t.engine.Transaction(ctx, func(ctx context.Context) error {
			return Venues.Insert(&Venue{Name: "Rooftop Bar", Capacity: 150}).Run(ctx, t.engine)
		}, piccolo.Nesting(piccolo.NestSavepoint))
	})
	if err != nil {
		return "", err
	}
	t.say("The first nested block returned: %s", t.st.red(inner.Error()))
	venues, err := selectRows(ctx, t, Venues, Venues.Select().OrderBy(VenueID.Asc()))
	if err != nil {
		return "", err
	}
	var names []string
	for _, v := range venues {
		names = append(names, v.Name)
	}
	if want := []string{"Amazing Venue", "Small Venue", "The Garage", "Rooftop Bar"}; !slices.Equal(names, want) {
		return "", fmt.Errorf("venues %v, want %v", names, want)
	}
	return "the outer transaction committed The Garage and Rooftop Bar; Castle Ruins was rolled back to its savepoint", nil
}

// addTicket adds a ticket at price for the concert at the venue called venue.
func addTicket(ctx context.Context, e piccolo.Engine, venue, price string) error {
	// Objects().Get wants exactly one concert; the venue's id comes from a
	// subquery, a fragment of raw SQL in the typed Where.
	concert, err := Concerts.Objects().Get(ctx, e, query.SQL(`"venue" = (SELECT "id" FROM "venue" WHERE "name" = $1)`, venue))
	if err != nil {
		return err
	}
	return Tickets.Insert(&Ticket{Concert: concert.ID, Price: price}).Run(ctx, e)
}

// stepSavepoints uses explicit savepoints and expects the rolled-back
// discount gone and the released insert kept.
func stepSavepoints(ctx context.Context, t *tour) (string, error) {
	txCtx, tx, err := t.engine.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(txCtx) // after Commit it does nothing
	if err := addTicket(txCtx, t.engine, "Amazing Venue", "75.00"); err != nil {
		return "", err
	}
	discount, err := tx.Savepoint(txCtx, "before_discount")
	if err != nil {
		return "", err
	}
	if _, err := Tickets.Update(TicketPrice.SetSQL(`"price" / $1`, 2)).All().Run(txCtx, t.engine); err != nil {
		return "", err
	}
	t.say("Inside the transaction, after the discount (every ticket at half price):")
	allTickets := Tickets.Select().OrderBy(TicketID.Asc())
	if _, err := selectRows(txCtx, t, Tickets, allTickets); err != nil {
		return "", err
	}
	if err := discount.RollbackTo(txCtx); err != nil {
		return "", err
	}
	extra, err := tx.Savepoint(txCtx, "") // a generated name
	if err != nil {
		return "", err
	}
	if err := addTicket(txCtx, t.engine, "Small Venue", "30.00"); err != nil {
		return "", err
	}
	if err := extra.Release(txCtx); err != nil {
		return "", err
	}
	if err := tx.Commit(txCtx); err != nil {
		return "", err
	}
	t.say("After rolling back to %s, releasing %s and committing:", discount.Name(), extra.Name())
	tickets, err := selectRows(ctx, t, Tickets, allTickets)
	if err != nil {
		return "", err
	}
	var prices []string
	for _, ticket := range tickets {
		prices = append(prices, ticket.Price)
	}
	if want := []string{"50.00", "50.00", "25.50", "75.00", "30.00"}; !slices.Equal(prices, want) {
		return "", fmt.Errorf("ticket prices %s, want %s", strings.Join(prices, " "), strings.Join(want, " "))
	}
	return "the discount was rolled back to its savepoint; both new tickets were committed", nil
}
