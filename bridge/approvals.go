package bridge

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/protocol"
)

// permissionTTL is how long the bridge keeps re-sending a permission
// request after reconnects: the server's default expiry (it expires the
// request itself, counted from the same ts_ms).
const permissionTTL = 5 * time.Minute

// permRequest is one permission request a runtime waits on: Claude
// Code's notifications/claude/channel/permission_request, or a Codex
// PermissionRequest hook (answer is then where the verdict goes).
type permRequest struct {
	id, tool, desc, preview string
	asked                   time.Time

	// answer, for a hook's request, receives the verdict or, once every
	// link refused to relay the request, a refusal; nil for Claude Code.
	// Buffered (1): sends never block.
	answer chan permAnswer
	// refused counts the links whose server refused the request; guarded
	// by approvals.mu.
	refused int
}

// permAnswer is what a hook's request ends with: a verdict, or why no
// person can give one.
type permAnswer struct {
	behavior string // protocol.BehaviorAllow or BehaviorDeny; "" when refused
	by       string // the answering session
	refusal  string // why nothing was relayed, when behavior is ""
}

// approvals holds the permission requests Claude Code waits on, until a
// verdict comes back or they expire. The model never sees any of it: a
// request goes to the server of every link, addressed to the bridge's own
// user, and only a person on one of that user's approver machines can
// answer. It is safe for concurrent use.
type approvals struct {
	// mu guards pending.
	mu      sync.Mutex
	pending map[string]*permRequest // by lower-case id (Claude Code matches ids in any case)
}

func newApprovals() *approvals { return &approvals{pending: make(map[string]*permRequest)} }

// add records a request and reports whether it is new.
func (a *approvals) add(r *permRequest) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := strings.ToLower(r.id)
	if _, ok := a.pending[k]; ok {
		return false
	}
	a.pending[k] = r
	return true
}

// live returns the requests younger than permissionTTL and forgets the
// others.
func (a *approvals) live(now time.Time) []*permRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*permRequest
	for k, r := range a.pending {
		if now.Sub(r.asked) >= permissionTTL {
			delete(a.pending, k)
			continue
		}
		out = append(out, r)
	}
	return out
}

// has reports whether the request with id is pending.
func (a *approvals) has(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.pending[strings.ToLower(id)]
	return ok
}

// take removes and returns the pending request with id, if any.
func (a *approvals) take(id string) (*permRequest, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := strings.ToLower(id)
	r, ok := a.pending[k]
	delete(a.pending, k)
	return r, ok
}

// onPermissionRequest handles Claude Code's permission_request: it shows
// the model nothing, keeps the request and wakes every link to forward
// it. It only queues: it never blocks the MCP read loop.
func (b *Bridge) onPermissionRequest(p map[string]any) {
	str := func(k string, max int) string {
		s, _ := p[k].(string)
		return truncateUTF8(s, max)
	}
	r := &permRequest{
		id:      str("request_id", protocol.MaxRequestIDLen+1),
		tool:    str("tool_name", protocol.MaxToolNameLen),
		desc:    str("description", protocol.MaxDescriptionLen),
		preview: str("input_preview", protocol.MaxInputPreviewLen),
		asked:   b.now(),
	}
	check := protocol.Frame{Type: protocol.TPermissionRequest, ID: "check", RequestID: r.id, ToolName: r.tool}
	if err := check.Validate(); err != nil {
		b.log.Warn("permission request not relayed: answer it in Claude Code's terminal", "err", err)
		return
	}
	if !b.perms.add(r) {
		return
	}
	for _, l := range b.links {
		l.wakePermissions()
	}
}

// refuse counts one link's refusal to relay r and, for a hook's request
// that every link refused, ends its wait with that refusal.
func (a *approvals) refuse(r *permRequest, links int, why string) {
	a.mu.Lock()
	r.refused++
	all := r.refused >= links
	a.mu.Unlock()
	if all && r.answer != nil {
		select {
		case r.answer <- permAnswer{refusal: why}:
		default:
		}
	}
}

// onVerdict hands a person's verdict, delivered by the server of l, to
// the runtime that waits on it: Claude Code as
// notifications/claude/channel/permission, a hook through its answer. A
// verdict for a request no longer pending (answered in the terminal long
// ago, expired, a hook that gave up, or answered through another server)
// is dropped.
func (b *Bridge) onVerdict(l *link, f *protocol.Frame) {
	r, ok := b.perms.take(f.RequestID)
	if !ok {
		l.log.Info("verdict for a permission request no longer pending: dropped", "request", f.RequestID, "by", f.From)
		return
	}
	l.log.Info("permission verdict", "request", r.id, "behavior", f.Behavior, "by", f.From)
	if r.answer != nil {
		select {
		case r.answer <- permAnswer{behavior: f.Behavior, by: f.From}:
		default:
		}
		return
	}
	b.out.push(methodPermission, map[string]any{"request_id": r.id, "behavior": f.Behavior})
}

// wakePermissions asks the link to forward what is pending (never blocks).
func (l *link) wakePermissions() {
	select {
	case l.permWake <- struct{}{}:
	default:
	}
}

// forwardPermissions sends conn's server every live request not yet sent
// on this connection. A refusal — the user has no approver machines, or
// the request expired — is logged: the runtime's own prompt is then the
// only way to answer (a hook that waits is told once every link refused).
func (l *link) forwardPermissions(conn *control.Conn) {
	for _, r := range l.b.perms.live(l.b.now()) {
		key := strings.ToLower(r.id)
		l.mu.Lock()
		if l.conn != conn || l.permSent[key] {
			l.mu.Unlock()
			continue
		}
		l.permSent[key] = true
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), callWait)
		_, err := conn.Request(ctx, &protocol.Frame{Type: protocol.TPermissionRequest, RequestID: r.id,
			ToolName: r.tool, Description: r.desc, InputPreview: r.preview, TsMs: r.asked.UnixMilli()})
		cancel()
		var pe *protocol.Error
		switch {
		case err == nil:
			l.log.Info("permission request relayed to the approver machines", "request", r.id, "tool", r.tool)
			if r.answer != nil && !l.b.perms.has(r.id) {
				l.withdraw(conn, r.id) // the hook gave up while this was on its way
			}
		case errors.As(err, &pe):
			where := "Claude Code's terminal"
			if r.answer != nil {
				where = "the runtime's own prompt"
			}
			l.log.Warn("permission request not relayed: answer it in "+where, "request", r.id, "err", pe.Message)
			l.b.perms.refuse(r, len(l.b.links), pe.Message)
		default:
			// The connection ended: the next one sends it again.
			l.log.Debug("permission request not sent", "request", r.id, "err", err)
			l.mu.Lock()
			if l.conn == conn {
				delete(l.permSent, key)
			}
			l.mu.Unlock()
		}
	}
}

// withdrawPermission tells the server of every link that relayed the
// hook request id that nobody waits for its answer any more, so that the
// approvers stop seeing it (a server that does not hear it expires it).
func (b *Bridge) withdrawPermission(id string) {
	key := strings.ToLower(id)
	for _, l := range b.links {
		l.mu.Lock()
		conn, sent := l.conn, l.permSent[key]
		delete(l.permSent, key)
		l.mu.Unlock()
		if sent && conn != nil {
			l.sends.Go(func() { l.withdraw(conn, id) })
		}
	}
}

// withdraw sends conn's server permission_withdraw for request id.
func (l *link) withdraw(conn *control.Conn, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), callWait)
	defer cancel()
	if _, err := conn.Request(ctx, &protocol.Frame{Type: protocol.TPermissionWithdraw, RequestID: id}); err != nil {
		l.log.Info("permission request not withdrawn; the server expires it", "request", id, "err", err)
		return
	}
	l.log.Info("permission request withdrawn: the hook no longer waits", "request", id)
}
