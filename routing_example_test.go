package piccolo_test

import (
	"context"
	"fmt"
	"log"

	"github.com/piccolo-go/piccolo"
)

// A request that writes and then reads what it wrote: with Discover, reads
// go to the cluster's standbys, but only to one that has replayed the
// request's commits. In production the DSN names every host of the
// cluster, with target_session_attrs=read-write; here it names one server,
// a primary, so the read runs there.
func ExampleWithReadYourWrites() {
	engine, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{
		ReadRouting: &piccolo.ReadRouting{Discover: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := engine.StartConnectionPool(context.Background()); err != nil {
		log.Fatal(err)
	}
	defer engine.Close()

	if err := engine.RunDDL(context.Background(), "CREATE TABLE IF NOT EXISTS example_note (body text)"); err != nil {
		log.Fatal(err)
	}

	ctx := piccolo.WithReadYourWrites(context.Background())
	err = engine.Transaction(ctx, func(ctx context.Context) error {
		_, err := engine.Exec(ctx, piccolo.Querystring{SQL: "INSERT INTO example_note VALUES ($1)", Args: []any{"mine"}})
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("position recorded:", piccolo.ReadAfter(ctx) > 0)
	// A later request can go on from there: carry ReadAfter(ctx).String()
	// and restore it with ParseLSN and WithReadAfter.
	rows, err := engine.RunQuerystring(ctx, piccolo.Querystring{SQL: "SELECT count(*) AS mine, pg_is_in_recovery() AS standby FROM example_note WHERE body = 'mine'"}, piccolo.Read())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("rows seen:", rows[0]["mine"], "on a standby:", rows[0]["standby"])
	// Output:
	// position recorded: true
	// rows seen: 1 on a standby: false
}
