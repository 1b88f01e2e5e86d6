// Command quickstart is the README's first program: an engine, a table, a
// transaction and a select. Run it with DATABASE_URL (or PGHOST...) set.
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/query"
)

type Band struct {
	ID   int64  `piccolo:"id,pk"`
	Name string `piccolo:"name"`
}

var Bands = query.MustTable[Band]("band")

func main() {
	ctx := context.Background()
	eng, err := piccolo.NewPostgresEngine(piccolo.PostgresConfig{DSN: os.Getenv("DATABASE_URL")})
	if err != nil {
		log.Fatal(err)
	}
	if err := eng.StartConnectionPool(ctx); err != nil { // without a pool, each query connects anew
		log.Fatal(err)
	}
	defer eng.Close()
	err = eng.Transaction(ctx, func(ctx context.Context) error { // nil commits, an error rolls back
		if err := eng.Atomic().Add(Bands.Create().IfNotExists()).Run(ctx); err != nil {
			return err
		}
		return Bands.Insert(&Band{Name: "Pythonistas"}, &Band{Name: "Rustaceans"}).Run(ctx, eng)
	})
	if err != nil {
		log.Fatal(err)
	}
	bands, err := Bands.Select().All(ctx, eng)
	fmt.Println(bands, err)
}
