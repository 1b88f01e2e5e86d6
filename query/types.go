package query

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// pgTypeInfo is what a Go type says about its column.
type pgTypeInfo struct {
	sqlType  string // the PostgreSQL type
	nullable bool   // the Go type can hold NULL
	integer  bool   // an integer kind: a pk of this type is an identity column
	text     bool   // LIKE and length= apply
}

// knownTypes maps named types whose kind alone says too little.
var knownTypes = map[reflect.Type]pgTypeInfo{
	reflect.TypeFor[time.Time]():          {sqlType: "timestamptz"},
	reflect.TypeFor[time.Duration]():      {sqlType: "interval"},
	reflect.TypeFor[json.RawMessage]():    {sqlType: "jsonb", nullable: true},
	reflect.TypeFor[pgtype.Numeric]():     {sqlType: "numeric", nullable: true},
	reflect.TypeFor[pgtype.UUID]():        {sqlType: "uuid", nullable: true},
	reflect.TypeFor[pgtype.Text]():        {sqlType: "text", nullable: true, text: true},
	reflect.TypeFor[pgtype.Bool]():        {sqlType: "boolean", nullable: true},
	reflect.TypeFor[pgtype.Int2]():        {sqlType: "smallint", nullable: true},
	reflect.TypeFor[pgtype.Int4]():        {sqlType: "integer", nullable: true},
	reflect.TypeFor[pgtype.Int8]():        {sqlType: "bigint", nullable: true},
	reflect.TypeFor[pgtype.Float4]():      {sqlType: "real", nullable: true},
	reflect.TypeFor[pgtype.Float8]():      {sqlType: "double precision", nullable: true},
	reflect.TypeFor[pgtype.Timestamptz](): {sqlType: "timestamptz", nullable: true},
	reflect.TypeFor[pgtype.Timestamp]():   {sqlType: "timestamp", nullable: true},
	reflect.TypeFor[pgtype.Date]():        {sqlType: "date", nullable: true},
	reflect.TypeFor[pgtype.Interval]():    {sqlType: "interval", nullable: true},
	reflect.TypeFor[sql.NullString]():     {sqlType: "text", nullable: true, text: true},
	reflect.TypeFor[sql.NullBool]():       {sqlType: "boolean", nullable: true},
	reflect.TypeFor[sql.NullByte]():       {sqlType: "smallint", nullable: true},
	reflect.TypeFor[sql.NullInt16]():      {sqlType: "smallint", nullable: true},
	reflect.TypeFor[sql.NullInt32]():      {sqlType: "integer", nullable: true},
	reflect.TypeFor[sql.NullInt64]():      {sqlType: "bigint", nullable: true},
	reflect.TypeFor[sql.NullFloat64]():    {sqlType: "double precision", nullable: true},
	reflect.TypeFor[sql.NullTime]():       {sqlType: "timestamptz", nullable: true},
}

// kindTypes maps basic kinds, which also covers named types such as
// `type Genre string`.
var kindTypes = map[reflect.Kind]pgTypeInfo{
	reflect.Bool:    {sqlType: "boolean"},
	reflect.Int8:    {sqlType: "smallint", integer: true},
	reflect.Int16:   {sqlType: "smallint", integer: true},
	reflect.Uint8:   {sqlType: "smallint", integer: true},
	reflect.Int32:   {sqlType: "integer", integer: true},
	reflect.Uint16:  {sqlType: "integer", integer: true},
	reflect.Int:     {sqlType: "bigint", integer: true},
	reflect.Int64:   {sqlType: "bigint", integer: true},
	reflect.Uint32:  {sqlType: "bigint", integer: true},
	reflect.Float32: {sqlType: "real"},
	reflect.Float64: {sqlType: "double precision"},
	reflect.String:  {sqlType: "text", text: true},
}

// pgTypeOf maps a Go type to its PostgreSQL column type.
func pgTypeOf(t reflect.Type) (pgTypeInfo, error) {
	if info, ok := knownTypes[t]; ok {
		return info, nil
	}
	if elem, ok := sqlNullElem(t); ok {
		info, err := pgTypeOf(elem)
		info.nullable = true
		return info, err
	}
	if info, ok := kindTypes[t.Kind()]; ok {
		return info, nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		if t.Elem().Kind() == reflect.Pointer {
			return pgTypeInfo{}, fmt.Errorf("unsupported type %s: a pointer to a pointer", t)
		}
		info, err := pgTypeOf(t.Elem())
		info.nullable = true
		return info, err
	case reflect.Array:
		if t.Len() == 16 && t.Elem().Kind() == reflect.Uint8 {
			return pgTypeInfo{sqlType: "uuid"}, nil
		}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return pgTypeInfo{sqlType: "bytea", nullable: true}, nil
		}
		elem, err := pgTypeOf(t.Elem())
		if err != nil || strings.HasSuffix(elem.sqlType, "[]") {
			return pgTypeInfo{}, fmt.Errorf("unsupported type %s: arrays of %s are not supported", t, t.Elem())
		}
		return pgTypeInfo{sqlType: elem.sqlType + "[]", nullable: true}, nil
	case reflect.Map:
		if t.Key().Kind() == reflect.String {
			return pgTypeInfo{sqlType: "jsonb", nullable: true}, nil
		}
	case reflect.Struct:
		return pgTypeInfo{}, fmt.Errorf("unsupported type %s: add type=jsonb to store it as JSON", t)
	case reflect.Uint64, reflect.Uint, reflect.Uintptr:
		return pgTypeInfo{}, fmt.Errorf("unsupported type %s: PostgreSQL has no unsigned 64-bit integer; add type=numeric(20,0) to store every value, or type=bigint if the values fit in an int64", t)
	}
	return pgTypeInfo{}, fmt.Errorf("unsupported type %s", t)
}

// sqlNullElem reports the V of database/sql's generic Null[V].
func sqlNullElem(t reflect.Type) (reflect.Type, bool) {
	if t.Kind() != reflect.Struct || t.PkgPath() != "database/sql" || !strings.HasPrefix(t.Name(), "Null[") {
		return nil, false
	}
	f, ok := t.FieldByName("V")
	return f.Type, ok
}
