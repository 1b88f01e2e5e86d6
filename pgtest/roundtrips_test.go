package pgtest

import (
	"io"
	"net"
	"testing"
)

// Writes before an answer are one turn; a write after an answer is the
// next; reads alone are none.
func TestTurns(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	var c RoundTrips
	conn := c.Conn(client)
	go func() {
		buf := make([]byte, 16)
		for {
			n, err := server.Read(buf)
			if err != nil {
				return
			}
			if buf[n-1] == '?' { // a question: answer it
				if _, err := server.Write([]byte("!")); err != nil {
					return
				}
			}
		}
	}()
	c.Reset()
	ask := func(msgs ...string) {
		for _, m := range msgs {
			if _, err := conn.Write([]byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := io.ReadFull(conn, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	ask("a", "b", "c?") // a pipeline in three writes
	ask("d?")
	if got := c.Count(); got != 2 {
		t.Fatalf("%d turns, want 2", got)
	}
	if conn.(interface{ NetConn() net.Conn }).NetConn() != client {
		t.Fatal("NetConn does not return the wrapped connection")
	}
}
