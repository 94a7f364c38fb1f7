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

// permRequest is one notifications/claude/channel/permission_request that
// Claude Code is waiting on.
type permRequest struct {
	id, tool, desc, preview string
	asked                   time.Time
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

// onVerdict hands a person's verdict, delivered by the server of l, to
// Claude Code as notifications/claude/channel/permission. A verdict for a
// request no longer pending (answered in the terminal long ago, expired,
// or answered through another server) is dropped.
func (b *Bridge) onVerdict(l *link, f *protocol.Frame) {
	r, ok := b.perms.take(f.RequestID)
	if !ok {
		l.log.Debug("verdict for a permission request no longer pending", "request", f.RequestID)
		return
	}
	l.log.Info("permission verdict", "request", r.id, "behavior", f.Behavior, "by", f.From)
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
// the request expired — is logged: Claude Code's terminal prompt is then
// the only way to answer.
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
		case errors.As(err, &pe):
			l.log.Warn("permission request not relayed: answer it in Claude Code's terminal", "request", r.id, "err", pe.Message)
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
