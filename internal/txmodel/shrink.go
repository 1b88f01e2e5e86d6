package txmodel

import (
	"slices"
	"strconv"
	"strings"
)

// Smaller returns programs one step simpler than p, larger steps first:
// each one drops one operation (a block with its body) or an operation's
// expired ctx.
func Smaller(p Program) []Program {
	var out []Program
	var walk func(ops []Op, edit func(func([]Op) []Op) Program)
	walk = func(ops []Op, edit func(func([]Op) []Op) Program) {
		for i := range ops {
			out = append(out, edit(func(o []Op) []Op { return slices.Delete(slices.Clone(o), i, i+1) }))
		}
		for i, op := range ops {
			if op.Expired {
				out = append(out, edit(func(o []Op) []Op {
					o = slices.Clone(o)
					o[i].Expired = false
					return o
				}))
			}
			if len(op.Body) > 0 {
				walk(op.Body, func(f func([]Op) []Op) Program {
					return edit(func(o []Op) []Op {
						o = slices.Clone(o)
						o[i].Body = f(o[i].Body)
						return o
					})
				})
			}
		}
	}
	walk(p, func(f func([]Op) []Op) Program { return f(p) })
	return out
}

// At returns the operation at path ("2.1" is op 1 of op 2's body).
func At(p Program, path string) (Op, bool) {
	ops := []Op(p)
	var op Op
	for _, part := range strings.Split(path, ".") {
		i, err := strconv.Atoi(part)
		if err != nil || i < 1 || i > len(ops) {
			return Op{}, false
		}
		op = ops[i-1]
		ops = op.Body
	}
	return op, true
}
