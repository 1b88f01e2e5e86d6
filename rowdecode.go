package piccolo

import (
	"bytes"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// decodeKind is how a columnDecoder decodes a value.
type decodeKind uint8

const (
	decodeCodec         decodeKind = iota // the codec's DecodeValue
	decodeUnknownText                     // a type pgx does not know, in text: a string
	decodeUnknownBinary                   // a type pgx does not know, in binary: the bytes, copied
	decodeUnknownFormat                   // neither text nor binary: an error
	decodeText                            // pgx's TextCodec: a string
	decodeScanned                         // one of pgx's common codecs: scanned by read
)

// columnDecoder decodes the values of one column as pgx's rows.Values does,
// with the scan plan of the column's codec made once. The common types of
// pgx's own codecs are scanned into a scanDsts and boxed once; any other
// type, or a codec the connection registered in place of pgx's, goes
// through the codec's DecodeValue, as rows.Values does.
type columnDecoder struct {
	oid    uint32
	format int16
	kind   decodeKind
	tm     *pgtype.Map
	codec  pgtype.Codec
	scan   pgtype.ScanPlan
	// decodeScanned: read scans src with plan into dst, the field of a
	// scanDsts of the column's type, and returns the value (see
	// scanValue); a function, not a closure, so planning allocates
	// nothing.
	dst  any
	read func(plan pgtype.ScanPlan, src []byte, dst any) (any, error)
}

// scanDsts are the destinations of the columnDecoders' scan plans, one per
// type, shared by the columns of a result (which are decoded one at a
// time): variables that need no allocation of their own.
type scanDsts struct {
	i16  int16
	i32  int32
	i64  int64
	f32  float32
	f64  float64
	b    bool
	tstz pgtype.Timestamptz
	ts   pgtype.Timestamp
	date pgtype.Date
	uuid pgtype.UUID
}

// plan sets c up for a column of type oid in format, with tm's types, to
// scan into d.
func (c *columnDecoder) plan(tm *pgtype.Map, oid uint32, format int16, d *scanDsts) {
	*c = columnDecoder{oid: oid, format: format, tm: tm}
	dt, ok := tm.TypeForOID(oid)
	if !ok {
		switch format {
		case pgx.TextFormatCode:
			c.kind = decodeUnknownText
		case pgx.BinaryFormatCode:
			c.kind = decodeUnknownBinary
		default:
			c.kind = decodeUnknownFormat
		}
		return
	}
	c.codec = dt.Codec
	switch dt.Codec.(type) {
	case pgtype.TextCodec:
		c.kind = decodeText
		return
	case pgtype.Int2Codec:
		c.dst, c.read = &d.i16, scanValue[int16]
	case pgtype.Int4Codec:
		c.dst, c.read = &d.i32, scanValue[int32]
	case pgtype.Int8Codec:
		c.dst, c.read = &d.i64, scanValue[int64]
	case pgtype.Float4Codec:
		c.dst, c.read = &d.f32, scanValue[float32]
	case pgtype.Float8Codec:
		c.dst, c.read = &d.f64, scanValue[float64]
	case pgtype.BoolCodec:
		c.dst, c.read = &d.b, scanValue[bool]
	case *pgtype.TimestamptzCodec:
		c.dst, c.read = &d.tstz, scanValue[pgtype.Timestamptz]
	case *pgtype.TimestampCodec:
		c.dst, c.read = &d.ts, scanValue[pgtype.Timestamp]
	case pgtype.DateCodec:
		c.dst, c.read = &d.date, scanValue[pgtype.Date]
	case pgtype.UUIDCodec:
		c.dst, c.read = &d.uuid, scanValue[pgtype.UUID]
	default:
		return // decodeCodec
	}
	if c.scan = dt.Codec.PlanScan(tm, oid, format, c.dst); c.scan != nil {
		c.kind = decodeScanned
	} // else decodeCodec: DecodeValue reports the missing plan
}

// errUnknownFormat is rows.Values' error for a value in neither text nor
// binary format.
var errUnknownFormat = errors.New("unknown format code")

// decode returns the value src holds (nil for NULL).
func (c *columnDecoder) decode(src []byte, arena *valueArena) (any, error) {
	if src == nil {
		return nil, nil
	}
	switch c.kind {
	case decodeScanned:
		return c.read(c.scan, src, c.dst)
	case decodeText, decodeUnknownText:
		return arena.string(src), nil
	case decodeUnknownBinary:
		return bytes.Clone(src), nil
	case decodeUnknownFormat:
		return nil, errUnknownFormat
	default: // decodeCodec
		return c.codec.DecodeValue(c.tm, c.oid, c.format, src)
	}
}

// scanValue scans src with plan into dst, a *T that is a field of a
// scanDsts, and returns the value as pgtype's DecodeValue does: a time
// as a time.Time or its infinity modifier, a UUID as its bytes, any other
// value as it is.
func scanValue[T any](plan pgtype.ScanPlan, src []byte, dst any) (any, error) {
	p := dst.(*T)
	if err := plan.Scan(src, p); err != nil {
		return nil, err
	}
	switch v := any(p).(type) {
	case *pgtype.Timestamptz:
		return finiteOr(v.Time, v.InfinityModifier), nil
	case *pgtype.Timestamp:
		return finiteOr(v.Time, v.InfinityModifier), nil
	case *pgtype.Date:
		return finiteOr(v.Time, v.InfinityModifier), nil
	case *pgtype.UUID:
		return v.Bytes, nil
	}
	return *p, nil
}

// valueArena holds what a result's maps share: the scan destinations, and
// short strings, copied into shared chunks (one allocation for many
// strings rather than one a string). A string keeps its whole chunk alive,
// so chunks are small, and long strings get memory of their own. Other
// values are boxed into their map's any as Go boxes them.
type valueArena struct {
	dst  scanDsts
	text strings.Builder
}

// The largest chunk of strings (the first are smaller: a result of one row
// needs no more), and the longest string copied into one.
const (
	textChunk   = 4096
	textLongest = 256
)

// string returns src as a string.
func (a *valueArena) string(src []byte) string {
	if len(src) > textLongest {
		return string(src)
	}
	if a.text.Cap()-a.text.Len() < len(src) {
		size := min(max(2*a.text.Cap(), 64, len(src)), textChunk)
		a.text = strings.Builder{}
		a.text.Grow(size)
	}
	// What a Builder has written it never changes: earlier strings stay
	// as they were when the chunk grows or is replaced.
	start := a.text.Len()
	a.text.Write(src)
	return a.text.String()[start:]
}

// finiteOr is a time value as pgtype's DecodeValue returns it: the time,
// or its infinity modifier when it is infinite.
func finiteOr(t time.Time, m pgtype.InfinityModifier) any {
	if m != pgtype.Finite {
		return m
	}
	return t
}
