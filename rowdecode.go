package piccolo

import (
	"bytes"
	"errors"
	"strings"
	"time"
	"unsafe"

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
	decodeInt2
	decodeInt4
	decodeInt8
	decodeFloat4
	decodeFloat8
	decodeBool
	decodeTimestamptz
	decodeTimestamp
	decodeDate
	decodeUUID
)

// columnDecoder decodes the values of one column as pgx's rows.Values does,
// with the scan plan of the column's codec made once. The common types of
// pgx's own codecs are scanned into a field of the decoder (a variable that
// needs no allocation of its own) and boxed once; any other type, or a codec
// the connection registered in place of pgx's, goes through the codec's
// DecodeValue, as rows.Values does.
type columnDecoder struct {
	oid    uint32
	format int16
	kind   decodeKind
	tm     *pgtype.Map
	codec  pgtype.Codec
	scan   pgtype.ScanPlan

	// The destinations of scan, one per kind.
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

// plan sets c up for a column of type oid in format, with tm's types.
func (c *columnDecoder) plan(tm *pgtype.Map, oid uint32, format int16) {
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
		c.kind = decodeInt2
	case pgtype.Int4Codec:
		c.kind = decodeInt4
	case pgtype.Int8Codec:
		c.kind = decodeInt8
	case pgtype.Float4Codec:
		c.kind = decodeFloat4
	case pgtype.Float8Codec:
		c.kind = decodeFloat8
	case pgtype.BoolCodec:
		c.kind = decodeBool
	case *pgtype.TimestamptzCodec:
		c.kind = decodeTimestamptz
	case *pgtype.TimestampCodec:
		c.kind = decodeTimestamp
	case pgtype.DateCodec:
		c.kind = decodeDate
	case pgtype.UUIDCodec:
		c.kind = decodeUUID
	default:
		return // decodeCodec
	}
	if c.scan = dt.Codec.PlanScan(tm, oid, format, c.dst()); c.scan == nil {
		c.kind = decodeCodec // DecodeValue reports the missing plan
	}
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
	case decodeText, decodeUnknownText:
		return arena.strs.box(arena.string(src)), nil
	case decodeUnknownBinary:
		return bytes.Clone(src), nil
	case decodeUnknownFormat:
		return nil, errUnknownFormat
	case decodeCodec:
		return c.codec.DecodeValue(c.tm, c.oid, c.format, src)
	}
	if err := c.scan.Scan(src, c.dst()); err != nil {
		return nil, err
	}
	switch c.kind {
	case decodeInt2:
		return arena.i16.box(c.i16), nil
	case decodeInt4:
		return arena.i32.box(c.i32), nil
	case decodeInt8:
		return arena.i64.box(c.i64), nil
	case decodeFloat4:
		return arena.f32.box(c.f32), nil
	case decodeFloat8:
		return arena.f64.box(c.f64), nil
	case decodeBool:
		return c.b, nil // boxing a bool allocates nothing
	case decodeTimestamptz:
		return arena.finiteOr(c.tstz.Time, c.tstz.InfinityModifier), nil
	case decodeTimestamp:
		return arena.finiteOr(c.ts.Time, c.ts.InfinityModifier), nil
	case decodeDate:
		return arena.finiteOr(c.date.Time, c.date.InfinityModifier), nil
	default: // decodeUUID
		return arena.uuid.box(c.uuid.Bytes), nil
	}
}

// dst is the destination of c's scan plan.
func (c *columnDecoder) dst() any {
	switch c.kind {
	case decodeInt2:
		return &c.i16
	case decodeInt4:
		return &c.i32
	case decodeInt8:
		return &c.i64
	case decodeFloat4:
		return &c.f32
	case decodeFloat8:
		return &c.f64
	case decodeBool:
		return &c.b
	case decodeTimestamptz:
		return &c.tstz
	case decodeTimestamp:
		return &c.ts
	case decodeDate:
		return &c.date
	default: // decodeUUID
		return &c.uuid
	}
}

// finiteOr is a time value as pgtype's DecodeValue returns it: the time,
// or its infinity modifier when it is infinite.
func (a *valueArena) finiteOr(t time.Time, m pgtype.InfinityModifier) any {
	if m != pgtype.Finite {
		return m
	}
	return a.time.box(t)
}

// valueArena holds the values of a result's maps in shared backing arrays:
// one allocation for many values rather than one a value (boxing an int64,
// a float64 or a time.Time into an any allocates). A value keeps its whole
// backing array alive, so the arrays are small, and long strings get memory
// of their own. What the arena has handed out it never changes.
type valueArena struct {
	text strings.Builder
	strs slab[string]
	i16  slab[int16]
	i32  slab[int32]
	i64  slab[int64]
	f32  slab[float32]
	f64  slab[float64]
	time slab[time.Time]
	uuid slab[[16]byte]
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

// slabLen is how many values a slab's backing array holds at most: the
// first holds a few (a result of one row needs no more), each next one
// twice as many.
const slabLen = 256

// slab boxes values of type T into interfaces whose data lives in a shared
// backing array. T must not be pointer-shaped (a pointer, a map, a chan, a
// func, or a struct or array of one of these alone), so that an interface
// holding a T points at its value: every type it is used with here is a
// number, a string, a time.Time or an array of bytes.
type slab[T any] struct {
	vals []T
	typ  unsafe.Pointer // the type word of an any holding a T
}

// eface is the layout of an any: its type word and a pointer to its value.
type eface struct {
	typ, data unsafe.Pointer
}

// box returns v as an any, without an allocation of its own.
func (s *slab[T]) box(v T) any {
	if len(s.vals) == cap(s.vals) {
		s.vals = make([]T, 0, min(max(2*cap(s.vals), 4), slabLen))
		if s.typ == nil {
			var zero any = *new(T)
			s.typ = (*eface)(unsafe.Pointer(&zero)).typ
		}
	}
	s.vals = append(s.vals, v)
	var out any
	*(*eface)(unsafe.Pointer(&out)) = eface{typ: s.typ, data: unsafe.Pointer(&s.vals[len(s.vals)-1])}
	return out
}
