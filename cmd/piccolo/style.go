package main

import (
	"io"
	"os"

	"golang.org/x/term"
)

// style colours terminal output with ANSI escapes, or not at all.
type style struct {
	color bool
}

// newStyle colours output for a terminal w unless noColor or the NO_COLOR
// convention (https://no-color.org) says otherwise.
func (a *app) newStyle(w io.Writer, noColor bool) style {
	if noColor {
		return style{}
	}
	if v, ok := a.lookupEnv("NO_COLOR"); ok && v != "" {
		return style{}
	}
	return style{color: isTerminal(w)}
}

// isTerminal reports whether v is a terminal (an *os.File on a tty).
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// wrap puts text between the ANSI escape code and a reset.
func (s style) wrap(code, text string) string {
	if !s.color {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

// bold, dim, cyan, green and red colour text when s is on.
func (s style) bold(text string) string  { return s.wrap("1", text) }
func (s style) dim(text string) string   { return s.wrap("2", text) }
func (s style) cyan(text string) string  { return s.wrap("36", text) }
func (s style) green(text string) string { return s.wrap("32", text) }
func (s style) red(text string) string   { return s.wrap("31", text) }
