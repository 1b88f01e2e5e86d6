package main

import (
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/query"
)

// The playground's schema: Piccolo's playground (managers, bands, venues,
// concerts and tickets) declared as the query layer's typed tables. The
// tables' names are not schema-qualified: the engine's search_path is
// playgroundSchema alone, so they are created and found there, and a
// CREATE TABLE without that schema fails rather than landing elsewhere.

// playgroundSchema is the schema the playground owns: it creates it, works
// only inside it and drops it at the end.
const playgroundSchema = "piccolo_playground"

// Manager manages bands.
type Manager struct {
	ID   int64  `piccolo:"id,pk"`
	Name string `piccolo:"name,unique,length=50"`
}

// Band is a band, with its manager if it has one.
type Band struct {
	ID         int64  `piccolo:"id,pk"`
	Name       string `piccolo:"name,unique,length=50"`
	Manager    *int64 `piccolo:"manager,fk=manager,ondelete=set null"`
	Popularity int32  `piccolo:"popularity,default=0"`
}

// Venue is where concerts take place.
type Venue struct {
	ID       int64  `piccolo:"id,pk"`
	Name     string `piccolo:"name,unique,length=100"`
	Capacity int32  `piccolo:"capacity,default=0"`
}

// Concert is two bands playing at a venue.
type Concert struct {
	ID       int64         `piccolo:"id,pk"`
	Band1    int64         `piccolo:"band_1,fk=band"`
	Band2    int64         `piccolo:"band_2,fk=band"`
	Venue    int64         `piccolo:"venue,fk=venue"`
	Starts   time.Time     `piccolo:"starts,type=timestamp"`
	Duration time.Duration `piccolo:"duration,type=interval"`
}

// Ticket is a ticket for a concert. Its price is numeric, sent and read in
// its text form.
type Ticket struct {
	ID      int64  `piccolo:"id,pk"`
	Concert int64  `piccolo:"concert,fk=concert"`
	Price   string `piccolo:"price,type=numeric(5,2)"`
}

// The playground's tables and the columns the tour filters, orders and
// sets by.
var (
	Managers = query.MustTable[Manager]("manager")
	Bands    = query.MustTable[Band]("band")
	Venues   = query.MustTable[Venue]("venue")
	Concerts = query.MustTable[Concert]("concert")
	Tickets  = query.MustTable[Ticket]("ticket")

	ManagerID      = query.C(Managers, func(m *Manager) *int64 { return &m.ID })
	BandID         = query.C(Bands, func(b *Band) *int64 { return &b.ID })
	BandName       = query.C(Bands, func(b *Band) *string { return &b.Name })
	BandPopularity = query.C(Bands, func(b *Band) *int32 { return &b.Popularity })
	VenueID        = query.C(Venues, func(v *Venue) *int64 { return &v.ID })
	VenueName      = query.C(Venues, func(v *Venue) *string { return &v.Name })
	ConcertID      = query.C(Concerts, func(c *Concert) *int64 { return &c.ID })
	TicketID       = query.C(Tickets, func(t *Ticket) *int64 { return &t.ID })
	TicketPrice    = query.C(Tickets, func(t *Ticket) *string { return &t.Price })
)

// playgroundTables are the playground's tables in the order they are created.
func playgroundTables() []string {
	return []string{Managers.Name(), Bands.Name(), Venues.Name(), Concerts.Name(), Tickets.Name()}
}

// schemaQueries create the schema and its tables, foreign keys included,
// in order: a table is created after those it references.
func schemaQueries() []piccolo.Query {
	return []piccolo.Query{
		piccolo.Raw("CREATE SCHEMA " + playgroundSchema),
		Managers.Create(), Bands.Create(), Venues.Create(), Concerts.Create(), Tickets.Create(),
	}
}

// dropSchemaSQL removes the playground and everything in it.
const dropSchemaSQL = "DROP SCHEMA IF EXISTS " + playgroundSchema + " CASCADE"

// rowsTable formats rows of a table whose columns, in order, are named
// names, as a resultTable of the columns in only (every column when only
// is empty). It relies on the playground's tables being flat structs whose
// fields are all columns: field i is column i.
func rowsTable[T any](names []string, rows []T, only ...string) *resultTable {
	typ := reflect.TypeFor[T]()
	res := &resultTable{}
	var fields []int
	for i, name := range names {
		if len(only) > 0 && !slices.Contains(only, name) {
			continue
		}
		fields = append(fields, i)
		res.columns = append(res.columns, resultColumn{name: name, numeric: isNumber(typ.Field(i).Type)})
	}
	for _, r := range rows {
		v := reflect.ValueOf(r)
		row := make([]string, len(fields))
		for j, i := range fields {
			row[j] = formatField(v.Field(i))
		}
		res.rows = append(res.rows, row)
	}
	return res
}

// isNumber reports whether a field of type t (or *t) holds a number.
func isNumber(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return t != reflect.TypeFor[time.Duration]()
	}
	return false
}

// formatField formats a field's value for a table cell: a nil pointer is
// NULL, as psql prints it.
func formatField(v reflect.Value) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "NULL"
		}
		v = v.Elem()
	}
	switch x := v.Interface().(type) {
	case time.Time:
		return x.Format(time.DateTime)
	case time.Duration:
		return x.String()
	}
	return fmt.Sprint(v.Interface())
}
