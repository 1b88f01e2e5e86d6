// Package query is piccolo-go's query layer: tables declared from Go
// structs, typed columns and where expressions, and builders that render
// parameterised SQL without a database (Select with joins, aggregates and
// subqueries, projections with Into, Objects, Count, Exists,
// Insert, Update, Delete, Save, Remove, GetOrCreate, Raw and the DDL:
// Create, DropTable, CreateIndex, DropIndex, AddColumn, DropColumn,
// RenameColumn).
//
// Every builder implements [piccolo.Query]: Querystrings renders its
// statements, in the order they must run, with every value a bound $n
// parameter and every identifier quoted. The engine runs them; the typed
// methods (All, First, Get, Run, Batch) run them on any [piccolo.Engine]
// and scan rows into the table's struct type with a field plan computed
// once per table.
//
// # Running queries
//
//	bands, err := Bands.Select().Where(BandPopularity.Ge(1000)).All(ctx, eng)
//	b, err := Bands.Objects().Get(ctx, eng, BandName.Eq("Pythonistas"))
//	n, err := Bands.Count().Run(ctx, eng)
//	err = Bands.Insert(&b1, &b2).Run(ctx, eng) // ids written back
//	for rows, err := range Bands.Select().Batch(ctx, eng, piccolo.BatchSize(500)) { ... }
//
// A query runs in the transaction its context carries, if any. Reads
// (Select and Objects without ForUpdate or ForShare, Count, Exists and
// their batches) are marked [piccolo.Read], so the engine's opt-in
// ReadRouting may send them to a replica outside a transaction; locking
// reads, writes and GetOrCreate always go to the primary.
//
// Every builder can join an [piccolo.Atomic]; anything else does not
// compile, since Add takes a [piccolo.Query]:
//
//	err := eng.Atomic().Add(Managers.Create(), Bands.Create(), Managers.Insert(&m)).Run(ctx)
//
// Insert, Save and GetOrCreate are [piccolo.Runner]s: the Atomic calls
// their Run, which writes RETURNING values (new ids) back into the rows,
// so that a row queued later can point at an id assigned earlier (a
// *int64 field aimed at the other row's ID). The price is a round trip of
// their own: the Atomic cannot put them in its pipeline with the plain
// statements around them. Queue piccolo.Raw statements where a pipeline
// matters more than the ids.
//
// # Joins, projections, aggregates and subqueries
//
// A foreign-key column joins the table it references (Column.Join), and
// Column.Via reaches that table's columns, in a Select's select list, Where,
// GroupBy, Having and OrderBy; joins chain (ticket → concert → band →
// manager). A NOT NULL key is an INNER JOIN; a nullable key, and any join
// after a LEFT JOIN, a LEFT JOIN, whose columns read as NULL when no row
// matches. Each join is rendered once, under an alias naming its path of
// foreign keys ("ticket.concert.band_1"), however often it is used; with
// joins, every column is written "table"."column". JoinTable with
// Select.JoinOn or LeftJoinOn joins on a condition of your own.
//
//	concert := TicketConcert.Join(Concerts)
//	band := ConcertBand1.Via(concert).Join(Bands)
//	tickets, err := Tickets.Select().Where(BandName.Via(band).Eq("Pythonistas")).All(ctx, eng)
//
// Columns of joined tables, aggregates and scalar subqueries do not scan
// into the table's struct: Into projects a Select into a struct of your
// own, matching items and fields by name when it renders. The aggregates
// (CountRows, CountOf, Sum, Avg, Min, Max, with Distinct) have typed
// results and go with GroupBy and Having; a column neither grouped nor
// aggregated, or an aggregate in Where, fails rendering as PostgreSQL
// would refuse it.
//
// Subqueries (InSubquery, NotInSubquery, ExistsSubquery, NotExistsSubquery,
// Scalar) take a Select or a Projection; their values are bound in the
// statement's one sequence of $n, and EqCol links a correlated subquery to
// the query around it (a Select, Count, Update or Delete).
//
// # Objects
//
// Objects reads whole rows, which Save writes back: an INSERT for a new
// object (a zero primary key), else an upsert by primary key. Remove
// deletes an object's row by primary key. Get returns exactly one
// row: errors.Is(err, sql.ErrNoRows) when none matches, ErrMultipleRows
// when several do.
//
// GetOrCreate finds the row whose unique key columns equal a given row's,
// or inserts that row, race-safely: concurrent callers get one row and the
// same id, without errors and without aborting the transactions they run
// in (see GetOrCreate for how, and for REPEATABLE READ):
//
//	b := &Band{Name: "Pythonistas", Popularity: 1000}
//	g := Bands.GetOrCreate(b, BandName)
//	if err := g.Run(ctx, eng); err != nil { ... }
//	fmt.Println(b.ID, g.Created())
//
// # Zero keys
//
// A zero primary key (0, "", the zero UUID, ...) means "not saved yet".
// Insert, Save and GetOrCreate send it as DEFAULT when the column has one
// (an identity column, type=serial, or default= such as
// default=gen_random_uuid() on a uuid key), and write the key the server
// chose back into the row; COPY leaves the column out when every row's key
// is zero. Where the column has no DEFAULT, a zero key fails to render with
// ErrZeroKey before anything is sent: sent as it is, every new row would
// get the same key. Remove refuses a zero key too: the object has no row.
//
// # Conditions and NULL
//
// Where conditions are joined with AND. And() is TRUE and Or() is FALSE.
// An Update or Delete whose conditions match every row unconditionally (no
// condition, a nil Expr, only empty Ands at any depth, Or(And()),
// Not(Or())) fails with ErrNoWhere unless told All().
//
// A value sent as NULL (nil, a nil pointer, slice or map, an invalid
// sql.Null or pgtype value) is read as NULL, not compared with it, since
// "= NULL" matches no row: Eq(nil) renders IS NULL, Ne(nil) IS NOT NULL,
// In(a, nil) matches a or NULL, NotIn never matches a NULL column and
// NotIn() (no values) is IS NOT NULL. A NULL value on a NOT NULL column, in
// Lt, Le, Gt, Ge or Between, or as a GetOrCreate key fails rendering.
//
// # Large inserts
//
// An Insert of many rows renders one INSERT per chunk of about 4,000
// parameters, sent in one transaction (10,000 rows of 4 columns: 29 ms in
// chunks, 48 ms as one statement of 40,000 parameters). With nothing to
// write back (Returning() with no columns), no ON CONFLICT, and 1,000 rows
// or more, Run loads them with COPY through the engine's CopyFrom instead
// (12 ms), in the context's transaction if there is one.
//
// # Declaring a table
//
// A table is a struct type and a name:
//
//	type Band struct {
//		ID         int64  `piccolo:"id,pk"`
//		Name       string `piccolo:"name,unique,length=50"`
//		Manager    *int64 `piccolo:"manager,fk=manager,ondelete=cascade"`
//		Popularity int32  `piccolo:",default=0,index"`
//	}
//
//	var Bands = query.MustTable[Band]("band")
//	var BandName = query.C(Bands, func(b *Band) *string { return &b.Name })
//
// Exported fields are columns unless tagged `piccolo:"-"`; an untagged field
// is named by its Go name in snake_case, with Go's initialisms split
// (UserID → user_id, HTTPURL → http_url, UserIDs → user_ids, OAuth2Token →
// o_auth2_token; see the rule below). The tag is a
// comma-separated list, a column name first (empty keeps the default),
// then options:
//
//	pk                  the primary key; on an integer field an identity
//	                    column: GENERATED BY DEFAULT AS IDENTITY, unless
//	                    default= or type=serial gives the key a default
//	unique              UNIQUE
//	null                allow NULL; the Go type must be able to hold it
//	notnull             NOT NULL on a Go type that could hold NULL
//	default=EXPR        DEFAULT EXPR, SQL written verbatim
//	length=N            varchar(N) instead of text, on a string field
//	type=TYPE           the PostgreSQL type, verbatim: numeric(10,2), date
//	index[=NAME]        CREATE INDEX, named NAME or <table>_<column>_idx
//	fk=TABLE[(COLUMN)]  REFERENCES TABLE (COLUMN); COLUMN defaults to id;
//	                    TABLE may be schema.table
//	ondelete=ACTION     with fk: cascade, restrict, set null, set default
//	                    or no action
//
// A unique key of several columns is declared on the table with Unique:
//
//	var Gigs = query.MustTable[Gig]("gig", query.Unique("band", "night"))
//
// Words of an untagged name start at a capital after a lower-case letter
// or digit, and at the last capital of a run followed by lower case; a run
// of capitals made only of Go's common initialisms (ID, URL, HTTP, JSON,
// ...) is split into them, any other run stays one word, digits stay with
// the word before them, and a plural s stays with its initialism. Tag the
// field to choose another name.
//
// Commas inside parentheses or single quotes do not split the tag, so
// `type=numeric(10,2)` and `default='a,b'` work.
//
// # Types
//
// Go types map to PostgreSQL types as follows; a type outside this list is
// a declaration error unless the tag gives type=.
//
//	bool                           boolean
//	int8, int16, uint8             smallint
//	int32, uint16                  integer
//	int, int64, uint32             bigint
//	float32, float64               real, double precision
//	string                         text, or varchar(N) with length=N
//	time.Time                      timestamptz
//	time.Duration                  interval (microseconds: PostgreSQL
//	                               keeps no nanoseconds; an interval
//	                               of months reads as 30-day months)
//	uint64, uint                   none: give type=numeric(20,0), or
//	                               type=bigint if the values fit in int64
//	[]byte                         bytea
//	[16]byte (any UUID type)       uuid
//	json.RawMessage, maps          jsonb
//	pgtype.Numeric                 numeric
//	[]E                            E's type as an array: []int64 → bigint[]
//	*E, sql.Null[E], sql.NullE     E's type, NULL allowed
//	pgtype.Text, Int8, UUID, ...   their type, NULL allowed
//
// A column is NOT NULL unless its Go type can hold NULL: pointers,
// sql.Null*, pgtype's types, slices and maps (a nil slice is NULL).
//
// Integer primary keys are identity columns rather than serial: identity is
// the SQL standard, its sequence belongs to the column (no separate
// permissions or ownership), and BY DEFAULT still accepts explicit ids for
// fixtures and imports. Insert sends DEFAULT for a zero id. As with serial,
// an explicit id does not move the sequence: after importing ids, set it
// with setval(pg_get_serial_sequence('band', 'id'), max(id)).
//
// # Reuse
//
// Builders are values: every method returns a modified copy and never
// changes its receiver, so a partly built query can be kept in a variable,
// extended in several ways and shared between goroutines. Rows given to
// Insert are read when the query renders, not when it is built.
package query
