package piccolo

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// DefaultBatchSize is the number of rows a Batch fetches per Next unless
// BatchSize says otherwise. It matches Piccolo's default.
const DefaultBatchSize = 100

// Option adjusts one run of a query or batch: OnNode (every call), Read
// (statements and Batch), BatchSize (Batch only). A call refuses, before
// any I/O, an option that means nothing for it. It is a plain value, not a
// function, so that passing options costs no allocation on the hot path;
// the zero Option changes nothing.
type Option struct {
	kind  optionKind
	node  string
	count int
}

type optionKind uint8

const (
	optNone optionKind = iota // the zero Option changes nothing
	optNode
	optBatchSize
	optRead
)

type runOptions struct {
	node      string
	onNode    bool // OnNode was given: node names it, "" included (unknown)
	batchSize int
	read      bool
}

// OnNode runs the query on the named extra node (a read replica) instead of
// the primary. Inside a transaction the query still runs on that node,
// outside the transaction: replicas cannot join the primary's transaction.
func OnNode(name string) Option {
	return Option{kind: optNode, node: name}
}

// BatchSize sets how many rows a Batch fetches per Next (default 100).
// Values below 1 are rejected when the batch opens.
func BatchSize(n int) Option {
	return Option{kind: optBatchSize, count: n}
}

// optionName is how errors name an option kind.
var optionName = [...]string{optNone: "the zero Option", optNode: "OnNode", optBatchSize: "BatchSize", optRead: "Read"}

// collectRunOptions collects opts for call, which takes the options in
// takes. Any other option means nothing for the call and is refused before
// any I/O, with why (an option silently ignored would hide a mistake).
func collectRunOptions(call string, opts []Option, takes ...optionKind) (runOptions, error) {
	o := runOptions{batchSize: DefaultBatchSize}
	for _, opt := range opts {
		if opt.kind != optNone && !slices.Contains(takes, opt.kind) {
			return o, fmt.Errorf("piccolo: %s does not take %s: %s", call, optionName[opt.kind], refusedWhy[opt.kind])
		}
		switch opt.kind {
		case optNode:
			o.node, o.onNode = opt.node, true
		case optBatchSize:
			o.batchSize = opt.count
		case optRead:
			o.read = true
		}
	}
	return o, nil
}

// refusedWhy says why a call that does not take an option refuses it.
var refusedWhy = [...]string{
	optBatchSize: "only Batch fetches rows in batches",
	optRead:      "COPY writes, so it runs on the primary (or the node OnNode names)",
}

// NestMode says what Transaction and Begin do when the context already
// carries a transaction of the same engine.
type NestMode int

const (
	// NestJoin (the default, Piccolo's allow_nested=True) runs the inner block
	// inside the outer transaction. The inner Commit does nothing; a failure
	// of the inner block marks the whole transaction rollback-only.
	NestJoin NestMode = iota
	// NestRefuse returns ErrNestedTransaction (Piccolo's allow_nested=False).
	NestRefuse
	// NestSavepoint runs the inner block in a savepoint: its Commit releases
	// the savepoint and its failure rolls back only the inner work.
	// Savepoint blocks form a stack: one opens only inside the innermost
	// open savepoint block of the transaction (or when none is open), else
	// ErrNestedTransaction, so goroutines sharing a transaction cannot open
	// sibling blocks whose rollbacks would undo each other's work. While a
	// block is open, statements through a context outside it (the outer
	// context, captured or used by another goroutine) fail with ErrConnBusy:
	// they would run inside its savepoint. A block reports the outcome the
	// server has: if its rollback cannot be done, the enclosing transaction
	// becomes rollback-only.
	NestSavepoint
)

// String returns the mode's name.
func (m NestMode) String() string {
	switch m {
	case NestJoin:
		return "join"
	case NestRefuse:
		return "refuse"
	case NestSavepoint:
		return "savepoint"
	}
	return fmt.Sprintf("NestMode(%d)", int(m))
}

// IsoLevel is a transaction isolation level; its value is the SQL it stands
// for, as in pgx.
type IsoLevel string

// The isolation levels PostgreSQL implements.
const (
	ReadCommitted  IsoLevel = "read committed"
	RepeatableRead IsoLevel = "repeatable read"
	Serializable   IsoLevel = "serializable"
)

// TxOption adjusts a transaction started by Transaction or Begin: build
// one with Nesting, Isolation, ReadOnly, Retry or FailoverBudget. Like Option it is a plain
// value; the zero TxOption changes nothing.
type TxOption struct {
	kind      txOptionKind
	nesting   NestMode
	isolation IsoLevel
	count     int
	budget    time.Duration
}

type txOptionKind uint8

const (
	txOptNone txOptionKind = iota
	txOptNesting
	txOptIsolation
	txOptReadOnly
	txOptRetry
	txOptFailover
)

type txOptions struct {
	nesting     NestMode
	isolation   IsoLevel
	readOnly    bool
	maxAttempts int
	retry       bool          // Retry was given
	attempt     int           // the run of Transaction's closure, from 1 (0: 1)
	failover    time.Duration // FailoverBudget: how long failovers are retried; 0: not at all
}

// Nesting sets what happens when a transaction is already running in the
// context. The default is NestJoin.
func Nesting(m NestMode) TxOption {
	return TxOption{kind: txOptNesting, nesting: m}
}

// Isolation sets the isolation level of a new outermost transaction. It is
// ignored by a block that joins or becomes a savepoint of an outer one.
func Isolation(level IsoLevel) TxOption {
	return TxOption{kind: txOptIsolation, isolation: level}
}

// ReadOnly starts the outermost transaction READ ONLY.
func ReadOnly() TxOption {
	return TxOption{kind: txOptReadOnly}
}

// Retry makes Transaction run its closure up to maxAttempts times in total
// (the first included) when the transaction fails with a serialization
// failure (40001) or a deadlock (40P01), each time from BEGIN, with
// exponential backoff and jitter; when the attempts run out it returns a
// *RetryError. It applies only to an outermost transaction, is ignored when
// the block joins an outer one, and never retries an ambiguous commit.
// Begin refuses it: only a closure can be re-run. Add FailoverBudget to
// ride through failovers too: re-run after the node failed before COMMIT
// was sent (those re-runs do not count as attempts).
func Retry(maxAttempts int) TxOption {
	return TxOption{kind: txOptRetry, count: maxAttempts}
}

// DefaultFailoverBudget is how long FailoverBudget(0) retries failovers:
// longer than a failover manager takes to promote a standby (Patroni's
// default ttl is 30 s, and about that was measured by hand for ttl 20).
const DefaultFailoverBudget = 30 * time.Second

// FailoverBudget makes Retry also re-run the closure, from BEGIN, when the
// transaction failed because its node failed before COMMIT was sent, for
// as long as budget allows (0 means DefaultFailoverBudget), counted from
// the first such failure. Such failures are: the connection was lost or
// the server ended the session (57P01, 57P02, 57P03), the node turned
// read-only under a transaction not started ReadOnly (25006, confirmed by
// asking the node), or no connection could be made (the
// network refused it, the server is starting or shutting down, no host of
// a multi-host DSN with target_session_attrs=read-write accepts writes).
// The server rolled such a transaction back, so running it again is safe
// (given a closure that is safe to re-run, as for Retry). A failure after
// COMMIT was sent is ErrAmbiguousCommit and is never re-run.
//
// Failover re-runs do not count against Retry's attempts, which stay for
// serialization failures and deadlocks; they wait with exponential
// backoff (from 10 ms, doubling, capped at 1 s, half of it jittered), so
// writes resume within about a second of a new primary accepting them.
// When the budget runs out Transaction returns a *RetryError whose
// Failover is true. It needs Retry, is refused by Begin, and a negative
// budget is refused.
func FailoverBudget(budget time.Duration) TxOption {
	return TxOption{kind: txOptFailover, budget: budget}
}

func collectTxOptions(opts []TxOption) (txOptions, error) {
	o := txOptions{nesting: NestJoin, maxAttempts: 1}
	failover := false
	for _, opt := range opts {
		switch opt.kind {
		case txOptNesting:
			o.nesting = opt.nesting
		case txOptIsolation:
			o.isolation = opt.isolation
		case txOptReadOnly:
			o.readOnly = true
		case txOptRetry:
			o.maxAttempts, o.retry = opt.count, true
		case txOptFailover:
			if opt.budget < 0 {
				return o, fmt.Errorf("piccolo: FailoverBudget needs a budget of 0 (the default, %v) or more, got %v", DefaultFailoverBudget, opt.budget)
			}
			o.failover, failover = cmp.Or(opt.budget, DefaultFailoverBudget), true
		}
	}
	if failover && !o.retry {
		return o, fmt.Errorf("piccolo: FailoverBudget without Retry means nothing: only Transaction with Retry runs its closure again")
	}
	switch o.nesting {
	case NestJoin, NestRefuse, NestSavepoint:
	default:
		return o, fmt.Errorf("piccolo: unknown nesting mode %v", o.nesting)
	}
	switch o.isolation {
	case "", ReadCommitted, RepeatableRead, Serializable:
	default:
		return o, fmt.Errorf("piccolo: unknown isolation level %q", string(o.isolation))
	}
	if o.maxAttempts < 1 {
		return o, fmt.Errorf("piccolo: Retry needs at least 1 attempt, got %d", o.maxAttempts)
	}
	return o, nil
}

func (o txOptions) beginSQL() string {
	sql := "BEGIN"
	if o.isolation != "" {
		sql += " ISOLATION LEVEL " + string(o.isolation)
	}
	if o.readOnly {
		sql += " READ ONLY"
	}
	return sql
}
