package query_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/pgtest"
	"github.com/piccolo-go/piccolo/query"
)

// Item is the benchmarks' row: a few columns of common types.
type Item struct {
	ID      int64     `piccolo:"id,pk"`
	Name    string    `piccolo:"name"`
	Qty     int32     `piccolo:"qty"`
	Price   float64   `piccolo:"price"`
	Created time.Time `piccolo:"created"`
}

var (
	Items  = query.MustTable[Item]("item")
	ItemID = query.C(Items, func(i *Item) *int64 { return &i.ID })
)

// benchSetup returns an engine and a pgxpool on the same schema, with the
// item table holding rows rows, and the same pool size.
func benchSetup(b testing.TB, rows int) (*piccolo.PostgresEngine, *pgxpool.Pool) {
	b.Helper()
	ctx := context.Background()
	eng := newEngine(b)
	must(b, eng.Atomic().Add(Items.Create()).Run(ctx))
	if rows > 0 {
		must(b, Items.Insert(newItems(rows)...).Returning().Run(ctx, eng))
	}
	var search string
	must(b, eng.QueryFunc(ctx, piccolo.Querystring{SQL: "SHOW search_path"}, func(r pgx.Rows) error { return r.Scan(&search) }))
	cfg, err := pgxpool.ParseConfig(withSearchPath(b, pgtest.DSN(b), search))
	must(b, err)
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	must(b, err)
	b.Cleanup(pool.Close)
	return eng, pool
}

// cpuTime returns the user and system CPU time the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	must(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func newItems(n int) []*Item {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := make([]*Item, n)
	for i := range rows {
		rows[i] = &Item{Name: fmt.Sprintf("item %d", i), Qty: int32(i), Price: float64(i) / 4, Created: at.Add(time.Duration(i) * time.Second)}
	}
	return rows
}

// BenchmarkPointRead reads one row by primary key: the query layer's typed
// Select and Objects.Get against hand-written pgx on a pgxpool, sequential
// and from parallel goroutines.
func BenchmarkPointRead(b *testing.B) {
	ctx := context.Background()
	eng, pool := benchSetup(b, 1000)
	const hand = `SELECT "id", "name", "qty", "price", "created" FROM "item" WHERE "id" = $1`
	reads := []struct {
		name string
		read func(id int64) (Item, error)
	}{
		{"pgx", func(id int64) (it Item, err error) {
			err = pool.QueryRow(ctx, hand, id).Scan(&it.ID, &it.Name, &it.Qty, &it.Price, &it.Created)
			return it, err
		}},
		{"piccolo Select.First", func(id int64) (Item, error) {
			return Items.Select().Where(ItemID.Eq(id)).First(ctx, eng)
		}},
		{"piccolo Objects.Get", func(id int64) (Item, error) {
			return Items.Objects().Get(ctx, eng, ItemID.Eq(id))
		}},
	}
	// interleaved alternates pgx and each piccolo read, so that the noise
	// of a shared machine (the server runs on it too) hits both alike, and
	// reports each one's time per read and their ratio.
	b.Run("interleaved", func(b *testing.B) {
		spent := make([]time.Duration, len(reads))
		for i := int64(0); b.Loop(); i++ {
			id := i%1000 + 1
			for k, r := range reads {
				start := time.Now()
				it, err := r.read(id)
				spent[k] += time.Since(start)
				if err != nil || it.ID != id {
					b.Fatalf("%s %d: %+v, %v", r.name, id, it, err)
				}
			}
		}
		for k, r := range reads {
			b.ReportMetric(float64(spent[k].Nanoseconds())/float64(b.N), strings.ReplaceAll(r.name, " ", "_")+"-ns/op")
			if k > 0 {
				b.ReportMetric(float64(spent[k])/float64(spent[0]), strings.ReplaceAll(r.name, " ", "_")+"-x-pgx")
			}
		}
	})
	for _, r := range reads {
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := cpuTime(b)
			for i := int64(0); b.Loop(); i++ {
				it, err := r.read(i%1000 + 1)
				if err != nil || it.ID != i%1000+1 {
					b.Fatalf("read %d: %+v, %v", i%1000+1, it, err)
				}
			}
			// The client's CPU per read: steadier than wall time on a
			// machine shared with the server and other work.
			b.ReportMetric(float64((cpuTime(b)-cpu).Nanoseconds())/float64(b.N), "client-cpu-ns/op")
		})
		b.Run(r.name+" parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for i := int64(0); pb.Next(); i++ {
					if _, err := r.read(i%1000 + 1); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkInsert10k inserts 10,000 rows: the query layer's chunked
// multi-row INSERT (with and without RETURNING ids), the same statement
// in smaller chunks through pgx, and COPY through pgx's CopyFrom, on a
// pgxpool connection (the engine has no COPY entry point).
func BenchmarkInsert10k(b *testing.B) {
	ctx := context.Background()
	eng, pool := benchSetup(b, 0)
	const n = 10000
	rows := newItems(n)
	cols := []string{"name", "qty", "price", "created"}
	values := make([][]any, n)
	for i, r := range rows {
		values[i] = []any{r.Name, r.Qty, r.Price, r.Created}
	}
	insertChunks := func(size int) error {
		for start := 0; start < n; start += size {
			chunk := values[start:min(start+size, n)]
			var sql strings.Builder
			args := make([]any, 0, len(chunk)*len(cols))
			sql.WriteString(`INSERT INTO "item" ("name", "qty", "price", "created") VALUES `)
			for i, v := range chunk {
				if i > 0 {
					sql.WriteString(", ")
				}
				k := len(args)
				fmt.Fprintf(&sql, "($%d, $%d, $%d, $%d)", k+1, k+2, k+3, k+4)
				args = append(args, v...)
			}
			if _, err := pool.Exec(ctx, sql.String(), args...); err != nil {
				return err
			}
		}
		return nil
	}
	ways := []struct {
		name   string
		insert func() error
	}{
		{"query Insert, RETURNING ids", func() error { return Items.Insert(rows...).Run(ctx, eng) }},
		{"query Insert, no RETURNING", func() error { return Items.Insert(rows...).Returning().Run(ctx, eng) }},
		{"pgx INSERT, chunks of 1000", func() error { return insertChunks(1000) }},
		{"pgx INSERT, chunks of 250", func() error { return insertChunks(250) }},
		{"pgx CopyFrom", func() error {
			got, err := pool.CopyFrom(ctx, pgx.Identifier{"item"}, cols, pgx.CopyFromRows(values))
			if err == nil && got != n {
				err = fmt.Errorf("copied %d rows", got)
			}
			return err
		}},
	}
	for _, w := range ways {
		b.Run(w.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				for _, r := range rows {
					r.ID = 0
				}
				must(b, eng.RunDDL(ctx, `TRUNCATE "item"`))
				b.StartTimer()
				must(b, w.insert())
			}
			b.StopTimer()
			if c, err := Items.Count().Run(ctx, eng); c != n || err != nil {
				b.Fatalf("%d rows, %v; want %d", c, err, n)
			}
		})
	}
}

// BenchmarkAtomicInserts100 inserts 100 items all or nothing, writing each
// one's generated id back: the query layer's Inserts on an Atomic (one
// pipeline, BEGIN and COMMIT included) against the same by hand with pgx
// (Begin, a batch of INSERT ... RETURNING id, Commit).
func BenchmarkAtomicInserts100(b *testing.B) {
	ctx := context.Background()
	eng, pool := benchSetup(b, 0)
	rows := newItems(100)
	b.Run("pgx pipeline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			must(b, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				batch := &pgx.Batch{}
				for _, it := range rows {
					batch.Queue(`INSERT INTO item (name, qty, price, created) VALUES ($1, $2, $3, $4) RETURNING id`,
						it.Name, it.Qty, it.Price, it.Created).QueryRow(func(row pgx.Row) error { return row.Scan(&it.ID) })
				}
				return tx.SendBatch(ctx, batch).Close()
			}))
		}
	})
	b.Run("Atomic of Inserts", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a := eng.Atomic()
			for _, it := range rows {
				it.ID = 0
				a.Add(Items.Insert(it))
			}
			must(b, a.Run(ctx))
		}
	})
}
