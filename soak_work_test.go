package piccolo_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/piccolo-go/piccolo"
)

// outcome is what the engine told a worker about an operation.
type outcome int

const (
	outcomeCommitted outcome = iota
	outcomeFailed            // an error that says nothing was committed
	outcomeAmbiguous         // ErrAmbiguousCommit, or an autocommit statement whose connection failed
)

func (o outcome) String() string {
	return [...]string{"committed", "failed", "outcome unknown"}[o]
}

// soakAttempt is one run of a transfer's closure: the log rows it wrote
// (0: not reached) and the hooks that ran for it.
type soakAttempt struct {
	transfer    int64
	commitHooks int // OnCommit of the transaction
	fee, memo   soakBlock
}

// soakBlock is a savepoint block of an attempt: the fee, or a memo that a
// second goroutine sharing the transaction writes beside it.
type soakBlock struct {
	row         int64 // its log row (0: not reached)
	ok          bool  // the block reported success
	err         error // what it reported otherwise
	commitHooks int   // OnCommit of the block
}

func (b *soakBlock) end(err error) { b.ok, b.err = err == nil, err }

func (a *soakAttempt) blocks() map[string]*soakBlock {
	return map[string]*soakBlock{"fee": &a.fee, "memo": &a.memo}
}

// soakOp is one operation of a worker and what it was told.
type soakOp struct {
	n          int64
	worker     int
	autocommit bool // one log row outside a transaction, no transfer
	fault      faultKind
	plan       soakPlan
	attempts   []*soakAttempt
	outcome    outcome
	err        error
	took       time.Duration
}

// feeMode is how the fee's savepoint block ends.
type feeMode int

const (
	feeWaived    feeMode = iota // the closure returns an error: the block rolls back alone
	feeFails                    // a statement fails on the server (22012) and its error is returned
	feeSwallowed                // a statement fails on the server and the closure returns nil
	feeOK                       // modes from here on commit the fee
)

func (m feeMode) String() string {
	if m >= feeOK {
		return "fee kept"
	}
	return [...]string{"fee waived (the block returns an error)", "fee fails (1/0, its error returned)", "fee fails (1/0, its error swallowed)"}[m]
}

// pausePoint is where a worker-side fault's statement or pause goes.
type pausePoint int

const (
	pauseBeforeFee pausePoint = iota
	pauseInFee
	pauseAfterFee
	pauseAtEnd // after the last statement, right before COMMIT
)

func (p pausePoint) String() string {
	return [...]string{"before the fee block", "in the fee block", "after the fee block", "right before COMMIT"}[p]
}

// soakPlan is drawn before a transfer runs, so that each attempt of it
// does the same.
type soakPlan struct {
	from, to     int
	amount, fee  int64
	serializable bool // read-modify-write under SERIALIZABLE; else delta updates in random order (deadlocks)
	toFirst      bool
	memo         bool // a memo block beside the fee's, from a second goroutine
	dropMemo     bool // the memo block fails
	ending       feeMode
	at           pausePoint
	limit, pause time.Duration // a fault's time limit, and how long the statement or pause lasts
	limitMillis  int
}

func (p soakPlan) String() string {
	iso := "read committed"
	if p.serializable {
		iso = "serializable"
	}
	memo := ""
	if p.memo {
		memo = fmt.Sprintf(", a memo block beside it (fails: %v)", p.dropMemo)
	}
	return fmt.Sprintf("%d→%d amount %d, %s %d%s, %s", p.from, p.to, p.amount, p.ending, p.fee, memo, iso)
}

var (
	errFeeWaived   = errors.New("soak: fee waived")
	errMemoDropped = errors.New("soak: memo dropped")
)

// work runs operations until the run stops or maxOps were started.
func (s *soak) work(w int) {
	rng := rand.New(rand.NewPCG(s.seed, uint64(w)))
	for !s.halted() {
		n := s.opSeq.Add(1)
		if n > s.maxOps {
			return
		}
		op := &soakOp{n: n, worker: w}
		start := time.Now()
		switch k := rng.IntN(20); {
		case k == 0:
			s.audit(rng)
			continue
		case k < 3:
			s.autocommit(op)
		default:
			select {
			case op.fault = <-s.tokens:
				s.injected[op.fault].Add(1)
			default:
			}
			s.transfer(op, rng)
		}
		op.took = time.Since(start)
		s.mu.Lock()
		s.ops = append(s.ops, op)
		s.mu.Unlock()
		var connErr *pgconn.ConnectError
		if errors.As(op.err, &connErr) { // the server is restarting: do not spin
			pauseFor(context.Background(), 20*time.Millisecond)
		}
	}
}

// pauseFor waits d, or until ctx ends.
func pauseFor(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// autocommit writes one log row outside a transaction.
func (s *soak) autocommit(op *soakOp) {
	op.autocommit = true
	a := &soakAttempt{transfer: s.ids.Add(1)}
	op.attempts = []*soakAttempt{a}
	ctx, cancel := context.WithTimeout(context.Background(), soakOpTimeout)
	defer cancel()
	op.err = s.logRow(ctx, a.transfer, op, 0, 0, 0)
	var pgErr *pgconn.PgError
	var connErr *pgconn.ConnectError
	switch {
	case op.err == nil:
		op.outcome = outcomeCommitted
	case errors.As(op.err, &pgErr), errors.As(op.err, &connErr): // the server refused it, or was never reached
		op.outcome = outcomeFailed
	default: // the connection failed: it may have run
		op.outcome = outcomeAmbiguous
	}
}

// transfer moves an amount between two accounts and, in a savepoint block,
// a fee to the bank; the transfer's log row is written last.
func (s *soak) transfer(op *soakOp, rng *rand.Rand) {
	p := soakPlan{
		from: 1 + rng.IntN(soakAccounts-1), to: 1 + rng.IntN(soakAccounts-2),
		amount: int64(1 + rng.IntN(50)), fee: int64(1 + rng.IntN(3)),
		serializable: rng.IntN(2) == 0, toFirst: rng.IntN(2) == 0,
		ending: feeMode(rng.IntN(6)), at: pausePoint(rng.IntN(4)),
		limitMillis: 2 + rng.IntN(20),
		memo:        rng.IntN(4) == 0, dropMemo: rng.IntN(3) == 0,
	}
	if p.to >= p.from {
		p.to++
	}
	p.limit = time.Duration(p.limitMillis) * time.Millisecond
	p.pause = time.Duration(rng.IntN(2*p.limitMillis)) * time.Millisecond
	op.plan = p

	ctx, cancel := context.WithTimeout(context.Background(), soakOpTimeout)
	defer cancel()
	if op.fault == faultDeadline {
		ctx, cancel = context.WithTimeout(ctx, p.limit)
		defer cancel()
	}
	txCtx, cancelTx := context.WithCancel(ctx)
	defer cancelTx()
	opts := []piccolo.TxOption{piccolo.Retry(soakAttempts)}
	if p.serializable {
		opts = append(opts, piccolo.Isolation(piccolo.Serializable))
	}
	op.err = s.e.Transaction(txCtx, func(ctx context.Context) error {
		a := &soakAttempt{}
		op.attempts = append(op.attempts, a)
		s.e.CurrentTransaction(ctx).OnCommit(func(context.Context) { a.commitHooks++ })
		if err := s.setLimit(ctx, op); err != nil {
			return err
		}
		if err := s.move(ctx, p); err != nil {
			return err
		}
		if err := s.pauseAt(ctx, op, pauseBeforeFee); err != nil {
			return err
		}
		var memo sync.WaitGroup
		if p.memo {
			memo.Go(func() { a.memo.end(s.writeMemo(ctx, op, &a.memo)) })
		}
		a.fee.end(s.chargeFee(ctx, op, &a.fee))
		memo.Wait()
		for _, b := range a.blocks() {
			if piccolo.IsRetryable(b.err) {
				return b.err
			}
		}
		// Any other failure of a block is the block's alone: the transfer goes on.
		if err := s.pauseAt(ctx, op, pauseAfterFee); err != nil {
			return err
		}
		a.transfer = s.ids.Add(1)
		if err := s.logRow(ctx, a.transfer, op, p.from, p.to, p.amount); err != nil {
			return err
		}
		if err := s.pauseAt(ctx, op, pauseAtEnd); err != nil {
			return err
		}
		if op.fault == faultCancelBeforeCommit {
			cancelTx()
		}
		return nil
	}, opts...)
	switch {
	case op.err == nil:
		op.outcome = outcomeCommitted
	case errors.Is(op.err, piccolo.ErrAmbiguousCommit):
		op.outcome = outcomeAmbiguous
	default:
		op.outcome = outcomeFailed
	}
}

// setLimit sets the session limit a timeout fault needs, for this
// transaction only.
func (s *soak) setLimit(ctx context.Context, op *soakOp) error {
	setting := map[faultKind]string{
		faultStatementTimeout: "statement_timeout",
		faultIdleTimeout:      "idle_in_transaction_session_timeout",
	}[op.fault]
	if setting == "" {
		return nil
	}
	_, err := s.e.Exec(ctx, piccolo.Querystring{SQL: "SELECT set_config($1, $2, true)", Args: []any{setting, fmt.Sprint(op.plan.limitMillis)}})
	return err
}

// pauseAt runs a timeout fault's slow statement or idle pause when the
// plan puts it at point.
func (s *soak) pauseAt(ctx context.Context, op *soakOp, point pausePoint) error {
	if op.plan.at != point {
		return nil
	}
	switch op.fault {
	case faultStatementTimeout:
		_, err := s.e.Exec(ctx, piccolo.Querystring{SQL: "SELECT pg_sleep($1::float8 / 1000)", Args: []any{op.plan.pause.Milliseconds()}})
		return err
	case faultIdleTimeout:
		pauseFor(ctx, op.plan.pause)
	}
	return nil
}

// move transfers the plan's amount.
func (s *soak) move(ctx context.Context, p soakPlan) error {
	if p.serializable { // read-modify-write: a lost update would break the sums
		rows, err := s.e.RunQuerystring(ctx, piccolo.Querystring{
			SQL: "SELECT id, balance FROM soak_accounts WHERE id = ANY($1)", Args: []any{[]int32{int32(p.from), int32(p.to)}},
		})
		if err != nil {
			return err
		}
		for _, r := range rows {
			delta := p.amount
			if r["id"].(int32) == int32(p.from) {
				delta = -delta
			}
			if _, err := s.e.Exec(ctx, piccolo.Querystring{
				SQL: "UPDATE soak_accounts SET balance = $2 WHERE id = $1", Args: []any{r["id"], r["balance"].(int64) + delta},
			}); err != nil {
				return err
			}
		}
		return nil
	}
	updates := []piccolo.Querystring{
		{SQL: "UPDATE soak_accounts SET balance = balance - $2 WHERE id = $1", Args: []any{p.from, p.amount}},
		{SQL: "UPDATE soak_accounts SET balance = balance + $2 WHERE id = $1", Args: []any{p.to, p.amount}},
	}
	if p.toFirst {
		updates[0], updates[1] = updates[1], updates[0]
	}
	for _, q := range updates {
		if _, err := s.e.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// chargeFee moves the fee to the bank in a savepoint block that ends as
// the plan says.
func (s *soak) chargeFee(ctx context.Context, op *soakOp, b *soakBlock) error {
	p := op.plan
	if op.fault == faultBlockDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.limit)
		defer cancel()
	}
	return s.e.Transaction(ctx, func(ctx context.Context) error {
		s.e.CurrentTransaction(ctx).OnCommit(func(context.Context) { b.commitHooks++ })
		for _, q := range []piccolo.Querystring{
			{SQL: "UPDATE soak_accounts SET balance = balance - $2 WHERE id = $1", Args: []any{p.from, p.fee}},
			{SQL: "UPDATE soak_accounts SET balance = balance + $1 WHERE id = 0", Args: []any{p.fee}},
		} {
			if _, err := s.e.Exec(ctx, q); err != nil {
				return err
			}
		}
		b.row = s.ids.Add(1)
		if err := s.logRow(ctx, b.row, op, p.from, 0, p.fee); err != nil {
			return err
		}
		if err := s.pauseAt(ctx, op, pauseInFee); err != nil {
			return err
		}
		if op.fault == faultBlockDeadline {
			// Client-side work that may outlast the block's deadline: the
			// block then ends with its context done.
			pauseFor(context.Background(), p.pause)
		}
		switch p.ending {
		case feeWaived:
			return errFeeWaived
		case feeFails:
			_, err := s.e.Exec(ctx, piccolo.Querystring{SQL: "SELECT 1 / 0"})
			return err
		case feeSwallowed:
			_, _ = s.e.Exec(ctx, piccolo.Querystring{SQL: "SELECT 1 / 0"})
		}
		return nil
	}, piccolo.Nesting(piccolo.NestSavepoint))
}

// writeMemo writes a memo row in a savepoint block of its own, run from
// a second goroutine while the fee's block runs: sibling blocks must never
// undo each other's work silently.
func (s *soak) writeMemo(ctx context.Context, op *soakOp, b *soakBlock) error {
	return s.e.Transaction(ctx, func(ctx context.Context) error {
		s.e.CurrentTransaction(ctx).OnCommit(func(context.Context) { b.commitHooks++ })
		b.row = s.ids.Add(1)
		if err := s.logRow(ctx, b.row, op, 0, 0, 0); err != nil {
			return err
		}
		if op.plan.dropMemo {
			return errMemoDropped
		}
		return nil
	}, piccolo.Nesting(piccolo.NestSavepoint))
}

// logRow appends log row id, which moves amount from src to dst.
func (s *soak) logRow(ctx context.Context, id int64, op *soakOp, src, dst int, amount int64) error {
	_, err := s.e.Exec(ctx, piccolo.Querystring{
		SQL:  "INSERT INTO soak_log (id, op, worker, src, dst, amount) VALUES ($1, $2, $3, $4, $5, $6)",
		Args: []any{id, op.n, op.worker, src, dst, amount},
	})
	return err
}

// soakAudits counts the audits: Batch streams of every account, read
// while the faults go on.
type soakAudits struct {
	whole, failed atomic.Int64
	mu            sync.Mutex
	broken        []string // what the audits that broke the rule saw
}

// audit streams every account through a Batch outside a transaction (a
// cursor on one snapshot, its first FETCH sent with BEGIN and DECLARE), a
// few rows a batch, and checks what a batch promises whatever the faults:
// it fails, or it yields every account once, holding the conserved total.
func (s *soak) audit(rng *rand.Rand) {
	ctx, cancel := context.WithTimeout(context.Background(), soakOpTimeout)
	defer cancel()
	b, err := s.e.Batch(ctx, piccolo.Raw("SELECT id, balance FROM soak_accounts ORDER BY id"), piccolo.BatchSize(1+rng.IntN(soakAccounts)))
	if err != nil {
		s.audits.failed.Add(1)
		return
	}
	seen := map[int32]bool{}
	var total int64
	var broken []string
	for rows, err := range b.All(ctx) {
		if err != nil {
			s.audits.failed.Add(1)
			return
		}
		for _, r := range rows {
			id, ok1 := r["id"].(int32)
			balance, ok2 := r["balance"].(int64)
			if !ok1 || !ok2 || seen[id] {
				broken = append(broken, fmt.Sprintf("row %v (seen before: %v)", r, seen[id]))
			}
			seen[id] = true
			total += balance
		}
	}
	if len(seen) != soakAccounts || total != soakAccounts*soakInitial {
		broken = append(broken, fmt.Sprintf("%d accounts holding %d, want %d holding %d", len(seen), total, soakAccounts, soakAccounts*soakInitial))
	}
	if len(broken) == 0 {
		s.audits.whole.Add(1)
		return
	}
	s.audits.mu.Lock()
	s.audits.broken = append(s.audits.broken, strings.Join(broken, "; "))
	s.audits.mu.Unlock()
}
