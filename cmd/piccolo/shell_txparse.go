package main

import (
	"fmt"
	"strings"

	"github.com/piccolo-go/piccolo"
	"github.com/piccolo-go/piccolo/internal/sqltext"
)

// txAction is what a transaction-control statement typed as SQL does.
type txAction uint8

const (
	txBegin      txAction = iota + 1 // BEGIN, START TRANSACTION
	txCommit                         // COMMIT, END
	txRollback                       // ROLLBACK, ABORT
	txSavepoint                      // SAVEPOINT name
	txRelease                        // RELEASE [SAVEPOINT] name
	txRollbackTo                     // ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name
	txPrepared                       // COMMIT PREPARED, ROLLBACK PREPARED: plain SQL outside a transaction
)

// txMode is how a transaction begins: the options of BEGIN that the
// engine's transactions take.
type txMode struct {
	isolation piccolo.IsoLevel
	readOnly  bool
}

// options are mode as the engine's Begin takes it.
func (m txMode) options() []piccolo.TxOption {
	opts := []piccolo.TxOption{piccolo.Isolation(m.isolation)}
	if m.readOnly {
		opts = append(opts, piccolo.ReadOnly())
	}
	return opts
}

// txCommand is a transaction-control statement, read.
type txCommand struct {
	action txAction
	tag    string // the command tag psql would print
	mode   txMode // txBegin
	chain  bool   // COMMIT / ROLLBACK AND CHAIN
	name   string // the savepoint, as the server names it
}

// parseTx reads sql, a statement that sqltext.Control says controls the
// transaction. Every form PostgreSQL accepts either maps onto the engine's
// transactions or is refused with the reason: nothing is guessed.
func parseTx(sql string) (txCommand, error) {
	toks, _ := sqltext.Tokens(sql)
	c := &tokenCursor{toks: toks}
	var cmd txCommand
	var err error
	switch {
	case c.accept("BEGIN"):
		c.acceptAny("WORK", "TRANSACTION")
		cmd = txCommand{action: txBegin, tag: "BEGIN"}
		cmd.mode, err = c.modes()
	case c.accept("START", "TRANSACTION"):
		cmd = txCommand{action: txBegin, tag: "START TRANSACTION"}
		cmd.mode, err = c.modes()
	case c.accept("COMMIT", "PREPARED"), c.accept("ROLLBACK", "PREPARED"):
		return txCommand{action: txPrepared}, nil // the server reads the rest
	case c.accept("PREPARE", "TRANSACTION"):
		return cmd, fmt.Errorf("not run: %.60q: the shell does not do two-phase commit (PREPARE TRANSACTION); COMMIT or ROLLBACK instead", sql)
	case c.accept("COMMIT"), c.accept("END"):
		c.acceptAny("WORK", "TRANSACTION")
		cmd = txCommand{action: txCommit, tag: "COMMIT", chain: c.chain()}
	case c.accept("ROLLBACK"):
		c.acceptAny("WORK", "TRANSACTION")
		if c.accept("TO") {
			c.accept("SAVEPOINT")
			cmd = txCommand{action: txRollbackTo}
			cmd.name, err = c.ident()
			break
		}
		cmd = txCommand{action: txRollback, tag: "ROLLBACK", chain: c.chain()}
	case c.accept("ABORT"):
		c.acceptAny("WORK", "TRANSACTION")
		cmd = txCommand{action: txRollback, tag: "ROLLBACK", chain: c.chain()}
	case c.accept("SAVEPOINT"):
		cmd = txCommand{action: txSavepoint}
		cmd.name, err = c.ident()
	case c.accept("RELEASE"):
		c.accept("SAVEPOINT")
		cmd = txCommand{action: txRelease}
		cmd.name, err = c.ident()
	}
	if err == nil && (cmd.action == 0 || !c.done()) {
		err = fmt.Errorf("unexpected %q", c.peek())
	}
	if err != nil {
		return cmd, fmt.Errorf("not run: %.60q controls the transaction in a way the shell cannot follow: %w", sql, err)
	}
	return cmd, nil
}

// tokenCursor walks a statement's tokens.
type tokenCursor struct {
	toks []string
	i    int
}

// accept consumes words if the next tokens are they (in any case).
func (c *tokenCursor) accept(words ...string) bool {
	if c.i+len(words) > len(c.toks) {
		return false
	}
	for k, w := range words {
		if !strings.EqualFold(c.toks[c.i+k], w) {
			return false
		}
	}
	c.i += len(words)
	return true
}

// acceptAny consumes the next token if it is one of words.
func (c *tokenCursor) acceptAny(words ...string) bool {
	for _, w := range words {
		if c.accept(w) {
			return true
		}
	}
	return false
}

func (c *tokenCursor) done() bool { return c.i >= len(c.toks) }

// peek is the next token, for errors.
func (c *tokenCursor) peek() string {
	if c.done() {
		return "end of statement"
	}
	return c.toks[c.i]
}

// chain reads [AND [NO] CHAIN].
func (c *tokenCursor) chain() bool {
	if c.accept("AND", "CHAIN") {
		return true
	}
	c.accept("AND", "NO", "CHAIN")
	return false
}

// ident reads an identifier as the server names it: folded to lower case
// unless quoted.
func (c *tokenCursor) ident() (string, error) {
	if c.done() {
		return "", fmt.Errorf("a savepoint name is missing")
	}
	tok := c.toks[c.i]
	c.i++
	if strings.HasPrefix(tok, `"`) && len(tok) >= 2 {
		return strings.ReplaceAll(tok[1:len(tok)-1], `""`, `"`), nil
	}
	return strings.ToLower(tok), nil
}

// modes reads BEGIN's transaction modes, separated by commas or not.
// DEFERRABLE is refused: the engine's transactions do not take it (NOT
// DEFERRABLE, the default, is accepted).
func (c *tokenCursor) modes() (txMode, error) {
	var m txMode
	seen := map[string]bool{}
	once := func(what string) error {
		if seen[what] {
			return fmt.Errorf("%s given twice", what)
		}
		seen[what] = true
		return nil
	}
	for !c.done() {
		if c.accept(",") {
			continue
		}
		var err error
		switch {
		case c.accept("ISOLATION", "LEVEL"):
			err = once("ISOLATION LEVEL")
			switch {
			case c.accept("SERIALIZABLE"):
				m.isolation = piccolo.Serializable
			case c.accept("REPEATABLE", "READ"):
				m.isolation = piccolo.RepeatableRead
			case c.accept("READ", "COMMITTED"), c.accept("READ", "UNCOMMITTED"): // PostgreSQL runs READ UNCOMMITTED as READ COMMITTED
				m.isolation = piccolo.ReadCommitted
			default:
				return m, fmt.Errorf("unknown isolation level %q", c.peek())
			}
		case c.accept("READ", "ONLY"):
			err = once("READ ONLY / READ WRITE")
			m.readOnly = true
		case c.accept("READ", "WRITE"):
			err = once("READ ONLY / READ WRITE")
		case c.accept("NOT", "DEFERRABLE"):
			err = once("DEFERRABLE")
		case c.accept("DEFERRABLE"):
			return m, fmt.Errorf("DEFERRABLE is not supported by the engine's transactions; leave it out")
		default:
			return m, fmt.Errorf("unexpected %q", c.peek())
		}
		if err != nil {
			return m, err
		}
	}
	return m, nil
}
