package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/piccolo-go/piccolo"
)

const shellMetaHelp = `Describing
  \d                   list tables, views and sequences
  \d NAME              describe table, view or index NAME: columns, types,
                       nullability, defaults, indexes, foreign keys
  \dt                  list tables
  \dn                  list schemas
  \l                   list databases
Transactions (SQL works too: BEGIN [ISOLATION LEVEL ...] [READ ONLY], COMMIT,
ROLLBACK, SAVEPOINT, RELEASE, ROLLBACK TO, each with psql's meaning)
  \begin [OPTIONS]     begin a transaction, with BEGIN's options
  \commit              commit it
  \rollback            roll it back
  \savepoint [NAME]    create a savepoint; without NAME one is generated
  \rollback_to NAME    roll back to savepoint NAME
  \release NAME        release savepoint NAME
Queries and display
  \batch N QUERY       stream QUERY through a cursor, N rows per batch
  \x [on|off]          expanded display: one "column | value" line per column
  \timing [on|off]     show how long each command takes
  \i FILE              run the commands in FILE
General
  \? or help           this help
  \q                   quit (also: Ctrl-D); an open transaction is rolled back`

// meta runs a meta-command line (starting with a backslash); it returns
// true for \q.
func (s *session) meta(ctx context.Context, line string) (quit bool) {
	name, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(arg), ";"))
	var err error
	switch name {
	case `\q`:
		return true
	case `\?`:
		fmt.Fprintln(s.out, shellMetaHelp)
	case `\timing`:
		err = s.toggle(&s.timing, "Timing is", arg)
	case `\x`:
		err = s.toggle(&s.expanded, "Expanded display is", arg)
	case `\i`:
		err = s.includeMeta(ctx, arg)
	case `\d`, `\dt`, `\dn`, `\l`:
		s.timed(func() error { return s.cancellable(ctx, func() error { return s.describe(ctx, name, arg) }) })
	case `\begin`:
		s.timed(func() error { return s.txStatement(ctx, "BEGIN "+arg) })
	case `\commit`:
		s.timed(s.commit)
	case `\rollback`:
		s.timed(s.rollback)
	case `\savepoint`:
		s.timed(func() error { return s.savepoint(arg) })
	case `\rollback_to`:
		s.timed(func() error { return s.rollbackTo(arg) })
	case `\release`:
		s.timed(func() error { return s.release(arg) })
	case `\batch`:
		s.timed(func() error { return s.cancellable(ctx, func() error { return s.batch(ctx, arg) }) })
	default:
		err = fmt.Errorf(`unknown command %s: type \? for help`, name)
	}
	if err != nil {
		s.fail(err)
	}
	return false
}

// includeMeta runs `\i FILE`. A file stopped by ON_ERROR_STOP has printed
// its error already.
func (s *session) includeMeta(ctx context.Context, file string) error {
	if file == "" {
		return errors.New(`\i needs a file name`)
	}
	err := s.include(ctx, file)
	if errors.Is(err, errStoppedOnError) {
		s.failed = true
		return nil
	}
	return err
}

// toggle runs `\timing` and `\x`: on, off, or the other state.
func (s *session) toggle(setting *bool, what, arg string) error {
	switch arg {
	case "":
		*setting = !*setting
	case "on":
		*setting = true
	case "off":
		*setting = false
	default:
		return fmt.Errorf("want on or off, got %q", arg)
	}
	state := "off"
	if *setting {
		state = "on"
	}
	fmt.Fprintf(s.out, "%s %s.\n", what, state)
	return nil
}

// batch runs `\batch N QUERY`: QUERY through a cursor, printing each batch
// of at most N rows as it arrives.
func (s *session) batch(ctx context.Context, arg string) error {
	size, query, _ := strings.Cut(arg, " ")
	n, err := strconv.Atoi(size)
	query = strings.TrimSpace(query)
	if err != nil || n < 1 || query == "" {
		return errors.New(`usage: \batch N QUERY, with N at least 1`)
	}
	qctx := s.queryContext(ctx)
	b, err := s.engine.Batch(qctx, piccolo.Raw(query), piccolo.BatchSize(n))
	s.noteOutcome(err)
	if err != nil {
		return err
	}
	defer b.Close(qctx)
	total, batches := 0, 0
	for {
		res := &resultTable{}
		got, err := b.NextFunc(qctx, res.scan)
		s.noteOutcome(err)
		if err != nil {
			return err
		}
		if got == 0 {
			break
		}
		batches++
		total += got
		fmt.Fprintln(s.out, s.st.dim(fmt.Sprintf("-- batch %d", batches)))
		s.writeResult(res)
		if got < n {
			break
		}
	}
	fmt.Fprintf(s.out, "(%d rows in %d batches of up to %d)\n", total, batches, n)
	return nil
}
