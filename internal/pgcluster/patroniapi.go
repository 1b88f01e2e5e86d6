package pgcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Roles of a Patroni member, as its REST API reports them.
const (
	RoleLeader      = "leader"
	RoleSyncStandby = "sync_standby"
	RoleReplica     = "replica"
)

// Member is one node as Patroni's REST API (GET /cluster) reports it.
type Member struct {
	Name     string // node0, node1…
	Role     string // RoleLeader, RoleSyncStandby or RoleReplica
	State    string // "running", "starting", "stopped", "crashed"…
	Port     int    // PostgreSQL's port on 127.0.0.1
	Timeline int    // PostgreSQL's timeline: each promotion starts a new one
	// Lag is how many bytes of WAL the member's replay is behind the
	// leader's last position; 0 for the leader, -1 when Patroni does not
	// know it.
	Lag int64
}

func (m Member) running() bool { return m.State == "running" || m.State == "streaming" }

// memberJSON is a member in GET /cluster's answer.
type memberJSON struct {
	Name     string          `json:"name"`
	Role     string          `json:"role"`
	State    string          `json:"state"`
	Port     int             `json:"port"`
	Timeline int             `json:"timeline"`
	Lag      json.RawMessage `json:"lag"` // a number, "unknown", or absent for the leader
}

func (m memberJSON) member() Member {
	lag := int64(-1)
	if len(m.Lag) == 0 {
		lag = 0
	} else if n, err := strconv.ParseInt(string(m.Lag), 10, 64); err == nil {
		lag = n
	}
	return Member{Name: m.Name, Role: m.Role, State: m.State, Port: m.Port, Timeline: m.Timeline, Lag: lag}
}

func hasRole(ms []Member, role string) bool {
	return slices.ContainsFunc(ms, func(m Member) bool { return m.Role == role && m.running() })
}

func memberNamed(ms []Member, name string) (Member, bool) {
	i := slices.IndexFunc(ms, func(m Member) bool { return m.Name == name })
	if i < 0 {
		return Member{}, false
	}
	return ms[i], true
}

// apiTimeout bounds one request to Patroni's REST API, except a switchover,
// which Patroni answers when it is over.
const apiTimeout = 3 * time.Second

// Members returns the cluster's members as the first node whose REST API
// answers reports them, sorted by name.
func (p *Patroni) Members(ctx context.Context) ([]Member, error) {
	var errs []error
	for _, n := range p.nodes {
		var body struct {
			Members []memberJSON `json:"members"`
		}
		err := p.call(ctx, n, http.MethodGet, "/cluster", nil, apiTimeout, &body)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ms := make([]Member, len(body.Members))
		for i, m := range body.Members {
			ms[i] = m.member()
		}
		return ms, nil
	}
	return nil, fmt.Errorf("pgcluster: no Patroni REST API answers: %w", errors.Join(errs...))
}

// Leader returns the member holding the leader lock and running.
func (p *Patroni) Leader(ctx context.Context) (Member, error) {
	ms, err := p.Members(ctx)
	if err != nil {
		return Member{}, err
	}
	for _, m := range ms {
		if m.Role == RoleLeader && m.running() {
			return m, nil
		}
	}
	return Member{}, fmt.Errorf("pgcluster: no running leader among %v", ms)
}

// WaitLeader waits until a member other than the one named not ("": any)
// holds the leader lock and runs, and returns it. When ctx ends first, the
// error carries the last members seen and the end of the logs.
func (p *Patroni) WaitLeader(ctx context.Context, not string) (Member, error) {
	ms, err := p.waitMembers(ctx, "a leader other than "+strconv.Quote(not), func(ms []Member) bool {
		return slices.ContainsFunc(ms, func(m Member) bool { return m.Role == RoleLeader && m.running() && m.Name != not })
	})
	if err != nil {
		return Member{}, err
	}
	i := slices.IndexFunc(ms, func(m Member) bool { return m.Role == RoleLeader && m.running() && m.Name != not })
	return ms[i], nil
}

// WaitHealthy waits until there is a running leader, a running
// synchronous standby, and every node runs, and returns the members. In
// synchronous mode only a synchronous standby may take over from a leader
// that dies, so a test kills the leader only once the cluster is healthy.
func (p *Patroni) WaitHealthy(ctx context.Context) ([]Member, error) {
	return p.waitMembers(ctx, "a leader, a synchronous standby and every node running", func(ms []Member) bool {
		running := 0
		for _, m := range ms {
			if m.running() {
				running++
			}
		}
		return running == len(p.nodes) && hasRole(ms, RoleLeader) && hasRole(ms, RoleSyncStandby)
	})
}

// waitMembers polls the members until ok accepts them, and returns them.
// When ctx ends first, the error names what was awaited (what), the last
// members seen and the end of the logs.
func (p *Patroni) waitMembers(ctx context.Context, what string, ok func([]Member) bool) ([]Member, error) {
	var ms []Member
	var err error
	for {
		if ms, err = p.Members(ctx); err == nil && ok(ms) {
			return ms, nil
		}
		if exited := p.exitedNodes(); exited != "" {
			return nil, fmt.Errorf("waiting for %s: %s\n%s", what, exited, p.logTails())
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s: %w; members: %+v, last error: %v\n%s",
				what, ctx.Err(), ms, err, p.logTails())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// exitedNodes says which Patroni processes have exited by themselves, or "".
func (p *Patroni) exitedNodes() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var msgs []string
	for _, n := range p.nodes {
		if n.proc == nil {
			continue
		}
		select {
		case <-n.proc.exited:
			msgs = append(msgs, fmt.Sprintf("patroni of %s exited: %v", n.name, n.proc.err))
		default:
		}
	}
	return strings.Join(msgs, "; ")
}

// Switchover asks Patroni to hand the leader lock over to candidate (""
// the synchronous standby) through the leader's REST API (POST
// /switchover), and returns the new leader once Patroni reports the
// switchover done. The new leader may take a moment more to accept writes:
// see WaitWritable.
func (p *Patroni) Switchover(ctx context.Context, candidate string) (Member, error) {
	leader, err := p.Leader(ctx)
	if err != nil {
		return Member{}, err
	}
	n, err := p.node(leader.Name)
	if err != nil {
		return Member{}, err
	}
	req := map[string]string{"leader": leader.Name}
	if candidate != "" {
		req["candidate"] = candidate
	}
	// Patroni polls for the result for up to 20 s before it answers.
	if err := p.call(ctx, n, http.MethodPost, "/switchover", req, 30*time.Second, nil); err != nil {
		return Member{}, fmt.Errorf("pgcluster: switchover from %s: %w", leader.Name, err)
	}
	return p.WaitLeader(ctx, leader.Name)
}

// KillLeader kills the leader's Patroni and postmaster with SIGKILL (see
// Kill) and returns the member it was.
func (p *Patroni) KillLeader(ctx context.Context) (Member, error) {
	leader, err := p.Leader(ctx)
	if err != nil {
		return Member{}, err
	}
	return leader, p.Kill(leader.Name)
}

// WaitWritable waits until a write through DSN commits, which needs a
// primary and, with synchronous replication, a synchronous standby that
// confirms it. Each attempt is bounded by a few seconds; when ctx ends
// first the error carries the last attempt's.
func (p *Patroni) WaitWritable(ctx context.Context) error {
	var err error
	for {
		if err = p.tryWrite(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgcluster: waiting for a writable primary: %w; last attempt: %w", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tryWrite commits a transaction that writes (it takes a transaction ID)
// through DSN.
func (p *Patroni) tryWrite(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN(""))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "SELECT pg_current_xact_id()")
	return err
}

// call sends a request with body (nil: none) as JSON to n's REST API and
// decodes a JSON answer into out (nil: ignore it). An answer other than 200
// is an error carrying Patroni's text.
func (p *Patroni) call(ctx context.Context, n *patroniNode, method, path string, body any, timeout time.Duration, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(n.apiPort) + path
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.api.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s %s: %w", n.name, method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s %s: %s: %s", n.name, method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s %s: %w", n.name, method, path, err)
	}
	return nil
}
