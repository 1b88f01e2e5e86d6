package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/piccolo-go/piccolo"
)

// The examples connect with the PG* environment variables (an empty DSN),
// which the test harness points at a fresh database.

func ExampleNewPostgresEngine() {
	ctx := context.Background()
	// No I/O happens here: the engine connects on first use.
	engine, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{})
	if err != nil {
		log.Fatal(err)
	}
	if err := engine.StartConnectionPool(ctx); err != nil {
		log.Fatal(err)
	}
	defer engine.Close()

	rows, err := engine.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT $1::text AS greeting", Args: []any{"hello"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rows[0]["greeting"])
	// Output: hello
}

func ExamplePostgresEngine_Transaction() {
	ctx := context.Background()
	engine, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{})
	if err != nil {
		log.Fatal(err)
	}
	if err := engine.RunDDL(ctx, "CREATE TABLE example_band (name text PRIMARY KEY, popularity int)"); err != nil {
		log.Fatal(err)
	}
	defer engine.RunDDL(ctx, "DROP TABLE example_band")

	// Every query run with the closure's ctx runs in the transaction. A nil
	// return commits; an error rolls back and comes back to the caller.
	err = engine.Transaction(ctx, func(ctx context.Context) error {
		if _, err := engine.Exec(ctx, piccolo.Querystring{SQL: "INSERT INTO example_band VALUES ($1, $2)", Args: []any{"Pythonistas", 1000}}); err != nil {
			return err
		}
		_, err := engine.Exec(ctx, piccolo.Querystring{SQL: "INSERT INTO example_band VALUES ($1, $2)", Args: []any{"Rustaceans", 800}})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	rows, err := engine.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT count(*) AS n FROM example_band"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rows[0]["n"], "bands")
	// Output: 2 bands
}

func ExamplePostgresEngine_Begin() {
	ctx := context.Background()
	engine, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{})
	if err != nil {
		log.Fatal(err)
	}
	ctx, tx, err := engine.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// Rollback after Commit does nothing, so deferring it is always safe.
	defer tx.Rollback(ctx)

	if _, err := engine.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT 1"}); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	// The context still carries the finished transaction: nothing can run
	// through it in autocommit by accident.
	_, err = engine.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT 1"})
	fmt.Println(errors.Is(err, piccolo.ErrTransactionDone), tx.Committed())
	// Output: true true
}

func ExamplePostgresTransaction_Savepoint() {
	ctx := context.Background()
	engine, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{})
	if err != nil {
		log.Fatal(err)
	}
	err = engine.Transaction(ctx, func(ctx context.Context) error {
		tx := engine.CurrentTransaction(ctx)
		if err := engine.RunDDL(ctx, "CREATE TEMP TABLE sp (n int)"); err != nil {
			return err
		}
		if err := engine.RunDDL(ctx, "INSERT INTO sp VALUES (1)"); err != nil {
			return err
		}
		sp, err := tx.Savepoint(ctx, "") // generated name
		if err != nil {
			return err
		}
		if err := engine.RunDDL(ctx, "INSERT INTO sp VALUES (2)"); err != nil {
			return err
		}
		if err := sp.RollbackTo(ctx); err != nil { // undo the second insert only
			return err
		}
		rows, err := engine.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT sum(n) AS total FROM sp"})
		if err != nil {
			return err
		}
		fmt.Println(sp.Name(), rows[0]["total"])
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: savepoint_1 1
}

func ExamplePostgresEngine_Transaction_nestSavepoint() {
	ctx := context.Background()
	engine, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{})
	if err != nil {
		log.Fatal(err)
	}
	err = engine.Transaction(ctx, func(ctx context.Context) error {
		if err := engine.RunDDL(ctx, "CREATE TEMP TABLE log (msg text)"); err != nil {
			return err
		}
		// A failing nested block rolls back only its own work.
		err := engine.Transaction(ctx, func(ctx context.Context) error {
			_ = engine.RunDDL(ctx, "INSERT INTO log VALUES ('lost')")
			return errors.New("inner failure")
		}, piccolo.Nesting(piccolo.NestSavepoint))
		fmt.Println("inner:", err)
		rows, err := engine.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT count(*) AS n FROM log"})
		if err != nil {
			return err
		}
		fmt.Println("rows:", rows[0]["n"])
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// inner: inner failure
	// rows: 0
}

func ExamplePostgresEngine_Batch() {
	ctx := context.Background()
	engine, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{})
	if err != nil {
		log.Fatal(err)
	}
	batch, err := engine.Batch(ctx, piccolo.Raw("SELECT g FROM generate_series(1, $1::int) g", 25), piccolo.BatchSize(10))
	if err != nil {
		log.Fatal(err)
	}
	// Leaving the loop, early or at the end, closes the cursor and gives
	// the connection back.
	for rows, err := range batch.All(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(len(rows), "rows")
	}
	// Output:
	// 10 rows
	// 10 rows
	// 5 rows
}

func ExampleAtomic() {
	ctx := context.Background()
	engine, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{})
	if err != nil {
		log.Fatal(err)
	}
	err = engine.Atomic().Add(
		piccolo.Raw("CREATE TABLE example_manager (name text PRIMARY KEY)"),
		piccolo.Raw("INSERT INTO example_manager VALUES ($1)", "Guido"),
		piccolo.Raw("INSERT INTO example_manager VALUES ($1)", "Guido"), // duplicate
	).Run(ctx)
	var ae *piccolo.AtomicError
	if errors.As(err, &ae) {
		fmt.Println("query", ae.Index, "failed; nothing was committed")
	}
	rows, err := engine.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT to_regclass('example_manager') IS NULL AS gone"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("table gone:", rows[0]["gone"])
	// Output:
	// query 2 failed; nothing was committed
	// table gone: true
}

func ExampleFailoverBudget() {
	ctx := context.Background()
	// Against a cluster, name every node and ask for the one that takes
	// writes, e.g. DSN: "host=pg1,pg2,pg3 port=5432,5432,5432 user=app
	// dbname=app target_session_attrs=read-write". Here: the PG* variables.
	engine, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{})
	if err != nil {
		log.Fatal(err)
	}
	if err := engine.StartConnectionPool(ctx); err != nil {
		log.Fatal(err)
	}
	defer engine.Close()

	// Up to 5 runs for serialization failures; and while a failover lasts
	// (up to 30 s), runs again whenever the node failed before COMMIT.
	err = engine.Transaction(ctx, func(ctx context.Context) error {
		_, err := engine.Exec(ctx, piccolo.Querystring{SQL: "SELECT 1"})
		return err
	}, piccolo.Retry(5), piccolo.FailoverBudget(30*time.Second))
	var re *piccolo.RetryError
	switch {
	case errors.As(err, &re) && re.Failover:
		fmt.Printf("no primary for %v\n", re.Waited)
	case err != nil:
		fmt.Println(err)
	default:
		fmt.Println("committed")
	}
	// Output: committed
}
