package piccolo

import "fmt"

// DefaultBatchSize is the number of rows a Batch fetches per Next unless
// BatchSize says otherwise. It matches Piccolo's default.
const DefaultBatchSize = 100

// Option adjusts one run of a query or batch. It is a plain value, not a
// function, so that passing options costs no allocation on the hot path.
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

func collectRunOptions(opts []Option) runOptions {
	o := runOptions{batchSize: DefaultBatchSize}
	for _, opt := range opts {
		switch opt.kind {
		case optNode:
			o.node, o.onNode = opt.node, true
		case optBatchSize:
			o.batchSize = opt.count
		case optRead:
			o.read = true
		}
	}
	return o
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

// TxOption adjusts a transaction started by Transaction or Begin.
type TxOption func(*txOptions)

type txOptions struct {
	nesting     NestMode
	isolation   IsoLevel
	readOnly    bool
	maxAttempts int
}

// Nesting sets what happens when a transaction is already running in the
// context. The default is NestJoin.
func Nesting(m NestMode) TxOption {
	return func(o *txOptions) { o.nesting = m }
}

// Isolation sets the isolation level of a new outermost transaction. It is
// ignored by a block that joins or becomes a savepoint of an outer one.
func Isolation(level IsoLevel) TxOption {
	return func(o *txOptions) { o.isolation = level }
}

// ReadOnly starts the outermost transaction READ ONLY.
func ReadOnly() TxOption {
	return func(o *txOptions) { o.readOnly = true }
}

// Retry makes Transaction run its closure up to maxAttempts times in total
// (the first included) when the transaction fails with a serialization
// failure (40001) or a deadlock (40P01), each time from BEGIN, with
// exponential backoff and jitter. It applies only to an outermost
// transaction, is ignored when the block joins an outer one, and never
// retries an ambiguous commit. Begin ignores it: only a closure can be re-run.
func Retry(maxAttempts int) TxOption {
	return func(o *txOptions) { o.maxAttempts = maxAttempts }
}

func collectTxOptions(opts []TxOption) (txOptions, error) {
	o := txOptions{nesting: NestJoin, maxAttempts: 1}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
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
