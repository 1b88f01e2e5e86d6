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
}

// scanDsts are the destinations of the columnDecoders' scan plans, one per
// kind, shared by the columns of a result (which are decoded one at a
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
	var dst any // the scan plan's destination
	switch dt.Codec.(type) {
	case pgtype.TextCodec:
		c.kind = decodeText
		return
	case pgtype.Int2Codec:
		c.kind, dst = decodeInt2, &d.i16
	case pgtype.Int4Codec:
		c.kind, dst = decodeInt4, &d.i32
	case pgtype.Int8Codec:
		c.kind, dst = decodeInt8, &d.i64
	case pgtype.Float4Codec:
		c.kind, dst = decodeFloat4, &d.f32
	case pgtype.Float8Codec:
		c.kind, dst = decodeFloat8, &d.f64
	case pgtype.BoolCodec:
		c.kind, dst = decodeBool, &d.b
	case *pgtype.TimestamptzCodec:
		c.kind, dst = decodeTimestamptz, &d.tstz
	case *pgtype.TimestampCodec:
		c.kind, dst = decodeTimestamp, &d.ts
	case pgtype.DateCodec:
		c.kind, dst = decodeDate, &d.date
	case pgtype.UUIDCodec:
		c.kind, dst = decodeUUID, &d.uuid
	default:
		return // decodeCodec
	}
	if c.scan = dt.Codec.PlanScan(tm, oid, format, dst); c.scan == nil {
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
	switch c.kind {
	case decodeInt2:
		return scanned(c.scan, src, &arena.dst.i16, arena.i16.box)
	case decodeInt4:
		return scanned(c.scan, src, &arena.dst.i32, arena.i32.box)
	case decodeInt8:
		return scanned(c.scan, src, &arena.dst.i64, arena.i64.box)
	case decodeFloat4:
		return scanned(c.scan, src, &arena.dst.f32, arena.f32.box)
	case decodeFloat8:
		return scanned(c.scan, src, &arena.dst.f64, arena.f64.box)
	case decodeBool: // boxing a bool allocates nothing
		return scanned(c.scan, src, &arena.dst.b, func(b bool) any { return b })
	case decodeTimestamptz:
		return scanned(c.scan, src, &arena.dst.tstz, func(t pgtype.Timestamptz) any { return arena.finiteOr(t.Time, t.InfinityModifier) })
	case decodeTimestamp:
		return scanned(c.scan, src, &arena.dst.ts, func(t pgtype.Timestamp) any { return arena.finiteOr(t.Time, t.InfinityModifier) })
	case decodeDate:
		return scanned(c.scan, src, &arena.dst.date, func(d pgtype.Date) any { return arena.finiteOr(d.Time, d.InfinityModifier) })
	default: // decodeUUID
		return scanned(c.scan, src, &arena.dst.uuid, func(u pgtype.UUID) any { return arena.uuid.box(u.Bytes) })
	}
}

// scanned scans src with plan into *dst, a field of a columnDecoder, and
// returns box(*dst).
func scanned[T any](plan pgtype.ScanPlan, src []byte, dst *T, box func(T) any) (any, error) {
	if err := plan.Scan(src, dst); err != nil {
		return nil, err
	}
	return box(*dst), nil
}

// valueArena holds the values of a result's maps in shared backing arrays:
// one allocation for many values rather than one a value (boxing an int64,
// a float64 or a time.Time into an any allocates). A value keeps its whole
// backing array alive, so the arrays are small, and long strings get memory
// of their own. What the arena has handed out it never changes.
type valueArena struct {
	dst  scanDsts
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

// finiteOr is a time value as pgtype's DecodeValue returns it: the time,
// or its infinity modifier when it is infinite.
func (a *valueArena) finiteOr(t time.Time, m pgtype.InfinityModifier) any {
	if m != pgtype.Finite {
		return m
	}
	return a.time.box(t)
}
