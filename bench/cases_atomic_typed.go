package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// wlAtomicTyped is the typed Atomic workload: 100 Inserts whose generated
// ids are written back into their structs.
const wlAtomicTyped = "typed Atomic of 100 Inserts"

// peerTypedAtomic is piccolo-go's case of wlAtomicTyped.
const peerTypedAtomic = peerPiccoloAt + " of query Inserts"

// atomicTyped100 inserts 100 structs all or nothing and writes each one's
// generated id back: piccolo-go's typed Inserts in an Atomic (one
// pipeline, BEGIN and COMMIT included) against the same by hand with pgx
// (Begin, a batch of INSERT ... RETURNING id scanned into the structs,
// Commit).
func atomicTyped100(p *peers) []benchCase {
	const n = 100
	rows := newBulkRows(n)
	checkIDs := func() error {
		for j := range rows.rows {
			if err := checkNewID(rows.rows[j].ID); err != nil {
				return fmt.Errorf("row %d: %w", j, err)
			}
		}
		return nil
	}
	return caseList{
		{peer: "pgx pipeline (pool.Begin, SendBatch RETURNING id, Commit)", baseline: true, op: inPgxTx(p.pool,
			func(ctx context.Context, tx pgx.Tx, _ int) error {
				rows.reset()
				b := &pgx.Batch{}
				for j := range n {
					it := &rows.rows[j]
					b.Queue(insertItem, itemArgs(it)...).QueryRow(func(row pgx.Row) error { return row.Scan(&it.ID) })
				}
				if err := tx.SendBatch(ctx, b).Close(); err != nil {
					return err
				}
				return checkIDs()
			})},
		{peer: peerTypedAtomic, op: func(ctx context.Context, _ int) error {
			rows.reset()
			a := p.engine.Atomic()
			for j := range n {
				a.Add(items.Insert(rows.ptrs[j]))
			}
			return errors.Join(a.Run(ctx), checkIDs())
		}},
	}.withWorkload(wlAtomicTyped).inserting(n)
}
