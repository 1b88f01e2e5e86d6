package piccolo

import (
	"time"
)

// The routing rules for reads. They are the engine's promise about where a
// statement runs outside OnNode; each is checked by a test named for it
// (TestRoutingRuleN...).
//
//  1. A read is a statement or Batch run with the Read option (or a Querier
//     call under WithRead). It is routed only with ReadRouting, outside a
//     transaction and without OnNode; everything else runs on the primary
//     (the engine's own DSN) or the node OnNode names.
//  2. The candidates for a routed read are the routed extra nodes (Nodes,
//     or all ExtraNodes) that answered the last health check, and, with
//     Discover, the cluster's hosts that answered it while in recovery (a
//     standby). A discovered host that is not in recovery (a primary, or a
//     standby just promoted) is no candidate: reads reach it, if at all,
//     as the primary. With MaxLag, a candidate whose replay is further
//     behind is skipped.
//  3. Reads take the candidates in turn (round-robin); with none, they run
//     on the primary.
//  4. A routed read whose node fails at the connection level (it refuses
//     or drops the connection, or ends the session: 57P01, 57P02, 57P03)
//     before a row reached the caller runs again on another candidate,
//     else on the primary, and the node is out
//     until a health check passes (route.go states the fallback in full).
//     An error about the statement is returned naming the node.
//  5. Health checks run every CheckInterval from StartConnectionPool until
//     the pools close, and at once after a node is marked down (rule 4):
//     each check decides the candidates afresh, so after a failover or
//     switchover a host that returns as a standby gets reads again, a host
//     that is down gets none and a host that became the primary stops
//     getting routed reads.
//  6. Read your writes: a routed read under a context that carries a WAL
//     position (WithReadAfter, WithReadYourWrites) runs only on a candidate
//     whose replay has reached that position: as the last health check saw
//     it, else as one candidate re-checked on demand (one round trip on that
//     node); otherwise it runs on the primary.
//  7. A root transaction that commits under such a context raises the
//     context's position to the end of the primary's WAL after its COMMIT,
//     read in COMMIT's pipeline: no extra round trip. A statement, CopyFrom
//     or Querier call that succeeds under it outside a transaction on the
//     primary, not as a read, raises it too, with one more round trip. Without such
//     a context, nothing is read: COMMIT is sent alone, as before. When the
//     position cannot be read after a write succeeded, reads under the
//     context go to the primary.

// ReadRouting sends reads made outside a transaction to healthy extra
// nodes and standbys, round-robin, and falls back to the primary when none
// is healthy. The rules in full are at the top of replicas.go.
//
// A read is a statement run with the Read option (the query layer adds it
// to Select and Objects without a locking clause, their batches, Count and
// Exists) or a
// Batch opened with it, outside a transaction and without OnNode. Writes,
// locking reads, statements inside a transaction and everything without
// Read go to the primary.
//
// Only a connection-level failure (the node refuses or drops the
// connection) takes a node out of routing until its next health check; an
// error about the statement (from pgx before sending, or from PostgreSQL) is
// returned naming the node, which stays in use. A node that does not answer
// when StartConnectionPool runs is out until a health check passes.
//
// To point the engine at a replicated cluster, give it every host in a
// multi-host DSN with target_session_attrs=read-write
// (postgres://app@db1:5432,db2:5432,db3:5432/app?target_session_attrs=read-write):
// each new connection goes to whichever host accepts writes. With Discover,
// reads go to the hosts that are standbys.
type ReadRouting struct {
	// Nodes names the extra nodes to route to; empty means all of them.
	Nodes []string
	// MaxLag skips a node whose replay is further behind than this; zero
	// accepts any lag.
	MaxLag time.Duration
	// CheckInterval is how often nodes are checked; zero means one second.
	CheckInterval time.Duration
	// Discover routes reads to the cluster's standbys too: every health
	// check asks each of the cluster's hosts whether it is in recovery, and
	// the hosts that are become candidates (rule 2), named "host:port". The
	// hosts are Hosts, else those of the engine's DSN. Each host gets a pool
	// of its own, with the engine's settings but MinConns zero and no
	// target_session_attrs, started and closed with the engine's pool; OnNode
	// does not name them (ReadNodes reports them). Extra nodes are routed to
	// as Nodes says, next to the discovered hosts.
	Discover bool
	// Hosts lists the cluster's hosts for Discover, as "host" or
	// "host:port" (the port defaults to that of the DSN's first host), for a
	// DSN that names one address (a proxy, a virtual IP). Empty: the hosts
	// of the DSN. Hosts without Discover is an error.
	Hosts []string
}

// Read marks a statement or batch as a read that ReadRouting may send to a
// replica. It changes nothing without ReadRouting, inside a transaction or
// with OnNode, and CopyFrom ignores it. A read whose replica fails at the
// connection level before a row reached the caller runs again on the
// primary: mark only statements that may run twice.
func Read() Option {
	return Option{kind: optRead}
}

// ReadNode is what the last health check found out about a node that
// ReadRouting may route reads to.
type ReadNode struct {
	// Name is the extra node's name, or host:port of a discovered host.
	Name string
	// Discovered is true for a host of the cluster found by Discover.
	Discovered bool
	// Answered is true when the node answered the last check.
	Answered bool
	// Standby is true when the node was in recovery.
	Standby bool
	// Lag is how far its replay was behind (zero when it had replayed all it
	// received; the maximum Duration when nothing was replayed yet).
	Lag time.Duration
	// Replayed is its replay position, as the last check or a later
	// on-demand re-check saw it; zero on a primary.
	Replayed LSN
	// Routed is true when reads may go there now (rules 2 and 4).
	Routed bool
}

// ReadNodes reports the nodes ReadRouting routes among, extra nodes first
// (in the order of Nodes, else by name), then discovered hosts in order,
// as the last health check found them; before the first check (at
// StartConnectionPool) none has answered. It is nil without ReadRouting.
func (e *PostgresEngine) ReadNodes() []ReadNode {
	if e.router == nil {
		return nil
	}
	return e.router.report()
}
