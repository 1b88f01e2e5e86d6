package main

import (
	"context"
	"fmt"
	"os"
	"sync"
)

// signalRouter turns the signals that end the command into the
// cancellation of its context, except SIGINT while someone holds it.
type signalRouter struct {
	cancel context.CancelCauseFunc

	mu     sync.Mutex
	holder chan struct{} // receives SIGINT while held; nil otherwise
}

// take hands SIGINT to the caller until release: it arrives on
// interrupts (a Ctrl-C not yet received is not repeated) instead of
// ending the command.
func (r *signalRouter) take() (interrupts <-chan struct{}, release func()) {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	r.holder = ch
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		if r.holder == ch {
			r.holder = nil
		}
		r.mu.Unlock()
	}
}

// deliver routes sig and reports whether it ended the command.
func (r *signalRouter) deliver(sig os.Signal) (ended bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sig == os.Interrupt && r.holder != nil {
		select {
		case r.holder <- struct{}{}:
		default:
		}
		return false
	}
	r.cancel(fmt.Errorf("%v signal received", sig))
	return true
}
