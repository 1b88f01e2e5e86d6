package query_test

import (
	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/query"
)

// fuzzParent is the table fuzzRow's nullable foreign key points at, with a
// foreign key to itself, so that FuzzRender joins in chains and twice to
// one table under different aliases.
type fuzzParent struct {
	ID   int64  `piccolo:"id,pk"`
	Name string `piccolo:"name"`
	Up   *int64 `piccolo:"up,fk=fuzz \"parent\""`
}

var (
	fuzzParents    = query.MustTable[fuzzParent]("fuzz \"parent\"")
	fuzzParentID   = query.C(fuzzParents, func(p *fuzzParent) *int64 { return &p.ID })
	fuzzParentName = query.C(fuzzParents, func(p *fuzzParent) *string { return &p.Name })
	fuzzParentUp   = query.C(fuzzParents, func(p *fuzzParent) **int64 { return &p.Up })
	// fuzzViaParent is row → parent; fuzzViaUp is row → parent → up.
	fuzzViaParent = fuzzParentRef.Join(fuzzParents)
	fuzzViaUp     = fuzzParentUp.Via(fuzzViaParent).Join(fuzzParents)
	fuzzExplicit  = query.JoinTable(fuzzParents, "p \"x\"")
)

// joinExpr is a condition on a joined table or a subquery.
func (g *fuzzGen) joinExpr(depth int) query.Expr {
	switch g.intn(8) {
	case 0:
		return fuzzParentName.Via(fuzzViaParent).Eq(g.str())
	case 1:
		return fuzzParentName.Via(fuzzViaUp).IsNull()
	case 2:
		return fuzzParentID.Via(fuzzViaUp).In(int64(g.byte()), int64(g.byte()))
	case 3:
		return fuzzID.InSubquery(g.parentSelect(depth, fuzzParentID))
	case 4:
		return query.ExistsSubquery(g.parentSelect(depth, fuzzParentName).Where(fuzzParentID.EqCol(fuzzID)))
	case 5:
		return query.NotExistsSubquery(fuzzParents.Select().Where(fuzzParentUp.EqCol(fuzzParentRef)))
	case 6:
		return query.Scalar[int64](fuzzParents.Select(query.CountRows()).Where(g.parentExpr())).Gt(int64(g.byte()))
	default:
		return fuzzID.NotInSubquery(fuzzParents.Select(query.Max(fuzzParentID)).Where(g.parentExpr()))
	}
}

// parentSelect is a Select of col from the parent table with random
// conditions, maybe nested subqueries among them.
func (g *fuzzGen) parentSelect(depth int, col query.Col) query.Select[fuzzParent] {
	s := fuzzParents.Select(col).Where(g.parentExpr())
	if g.intn(3) == 0 && depth < 3 {
		s = s.Where(fuzzParentID.InSubquery(fuzzParents.Select(fuzzParentUp).Where(g.parentExpr())))
	}
	if g.intn(2) == 1 {
		s = s.Limit(g.intn(5))
	}
	return s
}

// parentExpr is a condition on the parent table alone.
func (g *fuzzGen) parentExpr() query.Expr {
	switch g.intn(4) {
	case 0:
		return fuzzParentName.Like(g.str())
	case 1:
		return fuzzParentUp.Eq(nil)
	case 2:
		return fuzzParentName.Via(fuzzParentUp.Join(fuzzParents)).Ne(g.str())
	default:
		return fuzzParentID.Ge(int64(g.byte()))
	}
}

// fuzzJoined and fuzzGrouped are projections FuzzRender renders; their
// field types do not matter, only their names, since rows are not scanned.
type fuzzJoined struct {
	ID     int64   `piccolo:"id"`
	PName  *string `piccolo:"pname"`
	UpName *string `piccolo:"upname"`
	Sub    *int64  `piccolo:"sub"`
}

type fuzzGrouped struct {
	Key   any    `piccolo:"key"`
	Count int64  `piccolo:"count"`
	Sum   *int64 `piccolo:"sum"`
	Max   any    `piccolo:"max"`
}

// projection builds a joined or grouped projection.
func (g *fuzzGen) projection() piccolo.Query {
	if g.intn(2) == 0 {
		items := []query.Col{fuzzID, fuzzParentName.Via(fuzzViaParent).As("pname"), fuzzParentName.Via(fuzzViaUp).As("upname"),
			query.Scalar[*int64](fuzzParents.Select(query.Max(fuzzParentID)).Where(fuzzParentUp.EqCol(fuzzParentRef))).As("sub")}
		for i := len(items) - 1; i > 0; i-- {
			j := g.intn(i + 1)
			items[i], items[j] = items[j], items[i]
		}
		s := fuzzTable.Select(items...).Where(g.exprs(0)...)
		if g.intn(2) == 1 {
			s = s.LeftJoinOn(fuzzExplicit, fuzzParentUp.Via(fuzzExplicit).EqCol(fuzzParentRef), fuzzParentName.Via(fuzzExplicit).Ne(g.str()))
		}
		if g.intn(2) == 1 {
			s = s.OrderBy(fuzzParentName.Via(fuzzViaUp).Desc(), fuzzID.Asc())
		}
		if g.intn(2) == 1 {
			s = s.Distinct()
		}
		return query.Into[fuzzJoined](s)
	}
	keys := []query.Col{fuzzN.As("key"), fuzzParentName.Via(fuzzViaParent).As("key"), fuzzName.As("key"), fuzzParentID.Via(fuzzViaUp).As("key")}
	plain := []query.Col{fuzzN, fuzzParentName.Via(fuzzViaParent), fuzzName, fuzzParentID.Via(fuzzViaUp)}
	k := g.intn(len(keys))
	maxes := []query.Col{query.Max(fuzzName).As("max"), query.Max(fuzzParentName.Via(fuzzViaParent)).As("max"), query.Min(fuzzScore).As("max")}
	count := query.CountRows()
	if g.intn(2) == 1 {
		count = query.CountOf(fuzzParentName.Via(fuzzViaUp)).Distinct()
	}
	s := fuzzTable.Select(keys[k], count, query.Sum(fuzzN).As("sum"), maxes[g.intn(len(maxes))]).Where(g.exprs(0)...).GroupBy(plain[k])
	switch g.intn(4) {
	case 1:
		s = s.Having(query.CountRows().Gt(int64(g.byte())), query.Avg(fuzzN).Le(float64(g.byte())))
	case 2:
		s = s.Having(query.Or(query.Sum(fuzzN).Ne(int32(g.byte())), query.Max(fuzzParentName.Via(fuzzViaParent)).Eq(g.str())))
	case 3:
		s = s.Having(query.Scalar[int64](fuzzParents.Select(query.CountRows())).Lt(int64(g.byte())))
	}
	if g.intn(2) == 1 {
		orders := []query.Order{fuzzN.Asc(), fuzzParentName.Via(fuzzViaParent).Asc(), fuzzName.Desc(), fuzzParentID.Via(fuzzViaUp).Asc()}
		s = s.OrderBy(query.CountRows().Desc(), orders[k])
	}
	if g.intn(2) == 1 {
		s = s.Limit(g.intn(10))
	}
	return query.Into[fuzzGrouped](s)
}
