package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/protocol"
)

// ApprovalsCmd lists the permission requests that Claude Code sessions of
// the caller's user are waiting on.
type ApprovalsCmd struct {
	serverFlag
	Watch bool `name:"watch" short:"w" help:"After the list, stream new requests and their outcomes until Ctrl-C, reconnecting after a lost connection."`
}

// ApproveCmd allows one pending permission request.
type ApproveCmd struct {
	verdictArgs
}

// DenyCmd denies one pending permission request.
type DenyCmd struct {
	verdictArgs
}

type verdictArgs struct {
	serverFlag
	ID      string `arg:"" name:"id" help:"The request id, as 'conclave approvals' shows it."`
	Session string `name:"session" placeholder:"SESSION" help:"The requesting session (user/machine/session, or its last part) when the id is pending in several."`
}

// permissionLine is one request in --json output (a list entry, or a line
// of --watch); kind is permission_request or permission_resolved.
type permissionLine struct {
	Kind         string `json:"kind"`
	From         string `json:"from"`
	RequestID    string `json:"request_id"`
	ToolName     string `json:"tool_name,omitempty"`
	Description  string `json:"description,omitempty"`
	InputPreview string `json:"input_preview,omitempty"`
	TsMs         int64  `json:"ts_ms,omitempty"`
	AgeMs        int64  `json:"age_ms,omitempty"`
	Behavior     string `json:"behavior,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// Run prints the pending requests, oldest first:
//
//	abcde  alice/laptop/agent1  Bash  asked 12s ago
//	  Run the shell command: ls
//	  {"command":"ls"}
//
// With --json, one array (or, with --watch, one object per line).
// Only a session on one of the user's approver machines may list them.
func (c *ApprovalsCmd) Run(ctx context.Context, g *Globals) error {
	co := connectOptions{}
	if c.Watch {
		co.keepalive = keepaliveEvery
	}
	rd := &redialer{g: g, server: c.Server, co: co}
	conn, err := rd.dial(ctx)
	if err != nil {
		return err
	}
	lines, err := listPermissions(ctx, conn)
	if err != nil {
		conn.Close()
		return err
	}
	if !c.Watch {
		conn.Close()
		if g.JSON {
			return g.printJSON(lines)
		}
	}
	if len(lines) == 0 && !g.JSON {
		g.printf("no pending permission requests\n")
	}
	w := &approvalsWatch{g: g, url: rd.first.srv.URL, pending: map[string]bool{}}
	for _, l := range lines {
		w.show(l)
	}
	if !c.Watch {
		return nil
	}
	fmt.Fprintf(g.Stderr, "watching permission requests of %s — Ctrl-C to stop\n", userOf(conn.Path()))
	return w.run(ctx, conn, rd)
}

// listPermissions asks conn for the pending requests.
func listPermissions(ctx context.Context, conn *control.Conn) ([]permissionLine, error) {
	r, err := conn.Request(ctx, &protocol.Frame{Type: protocol.TPermissionList})
	if err == nil {
		r, err = expect(r, protocol.TPermissions)
	}
	if err != nil {
		return nil, fmt.Errorf("list permission requests: %w", err)
	}
	now := time.Now()
	lines := make([]permissionLine, 0, len(r.Permissions))
	for _, p := range r.Permissions {
		lines = append(lines, permissionLine{Kind: protocol.TPermissionRequest, From: p.From, RequestID: p.RequestID,
			ToolName: p.ToolName, Description: p.Description, InputPreview: p.InputPreview, TsMs: p.TsMs,
			AgeMs: max(0, now.UnixMilli()-p.TsMs)})
	}
	return lines, nil
}

// approvalsWatch is approvals --watch: it streams requests and outcomes
// across lost connections. After a reconnection it lists the pending
// requests again, shows those it had not shown, and says which of those it
// had shown are no longer pending (answered or expired meanwhile).
type approvalsWatch struct {
	g       *Globals
	url     string
	pending map[string]bool // shown and not resolved, by from + request id
}

// noLongerPending is the outcome shown for a request that was pending
// before a lost connection and is not after it.
const noLongerPending = "no longer pending (answered or expired while disconnected)"

func pendingKey(l permissionLine) string { return l.From + "\x00" + l.RequestID }

// show prints l unless it repeats what was shown, and tracks what is
// pending.
func (w *approvalsWatch) show(l permissionLine) {
	key := pendingKey(l)
	switch l.Kind {
	case protocol.TPermissionRequest:
		if w.pending[key] {
			return
		}
		w.pending[key] = true
	case protocol.TPermissionResolved:
		delete(w.pending, key)
	}
	printPermission(w.g, l, time.Now(), "")
}

// run streams on a control.Session whose first connection is conn and
// later ones come from rd, until ctx ends (nil) or the server refuses for
// good (that error).
func (w *approvalsWatch) run(ctx context.Context, conn *control.Conn, rd *redialer) error {
	first := conn
	sess, err := control.NewSession(&control.SessionOptions{
		Dial: func(ctx context.Context) (*control.Conn, error) {
			if c := first; c != nil {
				first = nil
				return c, nil
			}
			return rd.dial(ctx)
		},
		Backoff:      control.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second},
		StableUptime: 30 * time.Second,
		Logger:       w.g.Logger,
	})
	if err != nil {
		conn.Close()
		return err
	}
	life, stop := context.WithCancel(context.Background())
	ended := make(chan error, 1)
	go func() { ended <- sess.Run(life) }()
	defer func() {
		stop()
		<-ended
	}()
	ups := 0
	for {
		ev, err := sess.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watching permission requests on %s: %w", w.url, err)
		}
		switch ev.Kind {
		case control.EventUp:
			if ups++; ups > 1 {
				w.resumed(ctx, ev.Conn)
			}
		case control.EventLost:
			fmt.Fprintf(w.g.Stderr, "⚠ connection to %s lost: %s — reconnecting (Ctrl-C to stop)\n", w.url, oneLine(ev.Err.Error()))
		case control.EventDialFailed:
			w.g.Logger.Debug("reconnect failed", "err", ev.Err, "retry_in", ev.RetryIn)
		case control.EventFrame:
			if l, ok := permissionEvent(ev.Frame); ok {
				w.show(l)
			}
		}
	}
}

// resumed lists the pending requests on a new connection: those not shown
// yet are shown, and those shown but gone are reported resolved.
func (w *approvalsWatch) resumed(ctx context.Context, conn *control.Conn) {
	lines, err := listPermissions(ctx, conn)
	if err != nil {
		w.g.Logger.Debug("list after reconnecting failed", "err", err)
		return // the connection is lost again; the next one lists
	}
	fmt.Fprintf(w.g.Stderr, "✓ reconnected to %s; watching again\n", w.url)
	now := map[string]bool{}
	for _, l := range lines {
		now[pendingKey(l)] = true
	}
	var gone []string
	for key := range w.pending {
		if !now[key] {
			gone = append(gone, key)
		}
	}
	slices.Sort(gone)
	for _, key := range gone {
		from, id, _ := strings.Cut(key, "\x00")
		w.show(permissionLine{Kind: protocol.TPermissionResolved, From: from, RequestID: id, Reason: noLongerPending})
	}
	for _, l := range lines {
		w.show(l)
	}
}

// permissionEvent turns a permission_request delivery or a
// permission_resolved notice into a line.
func permissionEvent(f *protocol.Frame) (permissionLine, bool) {
	switch f.Type {
	case protocol.TPermissionRequest:
		return permissionLine{Kind: f.Type, From: f.From, RequestID: f.RequestID, ToolName: f.ToolName,
			Description: f.Description, InputPreview: f.InputPreview, TsMs: stamp(f.TsMs)}, true
	case protocol.TPermissionResolved:
		return permissionLine{Kind: f.Type, From: f.From, RequestID: f.RequestID, Behavior: f.Behavior,
			Reason: f.Reason}, true
	}
	return permissionLine{}, false
}

// printPermission prints one request or outcome: a JSON line with --json,
// otherwise a few lines for people.
func printPermission(g *Globals, l permissionLine, now time.Time, prefix string) {
	if g.JSON {
		if err := g.printJSON(l); err != nil {
			g.Logger.Debug("write failed", "err", err)
		}
		return
	}
	if l.Kind == protocol.TPermissionResolved {
		g.printf("%s%s  %s  %s\n", prefix, sanitize(l.RequestID), sanitize(l.From), sanitize(orUnknown(l.Reason)))
		return
	}
	age := now.Sub(time.UnixMilli(l.TsMs)).Truncate(time.Second)
	g.printf("%s%s  %s  %s  asked %s ago\n", prefix, sanitize(l.RequestID), sanitize(l.From), oneLine(sanitize(l.ToolName)), max(0, age))
	if l.Description != "" {
		g.printf("  %s\n", oneLine(sanitize(l.Description)))
	}
	if l.InputPreview != "" {
		g.printf("  %s\n", oneLine(sanitize(l.InputPreview)))
	}
}

// userOf returns the user part of a session path.
func userOf(path string) string {
	u, _, _ := strings.Cut(path, "/")
	return u
}

// Run sends the verdict allow.
func (c *ApproveCmd) Run(ctx context.Context, g *Globals) error {
	return c.send(ctx, g, protocol.BehaviorAllow)
}

// Run sends the verdict deny.
func (c *DenyCmd) Run(ctx context.Context, g *Globals) error {
	return c.send(ctx, g, protocol.BehaviorDeny)
}

// send answers the request and prints `✓ allowed abcde (alice/laptop/agent1)`.
func (c *verdictArgs) send(ctx context.Context, g *Globals, behavior string) error {
	f := &protocol.Frame{Type: protocol.TPermissionVerdict, RequestID: c.ID, Behavior: behavior, Target: c.Session}
	check := *f
	check.ID = "local" // checked before connecting; the connection sets the real id
	if err := check.Validate(); err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) {
			return errors.New(pe.Message)
		}
		return err
	}
	r, _, err := g.oneShot(ctx, c.Server, f, protocol.TAck)
	if err != nil {
		return fmt.Errorf("%s %s: %w", behavior, c.ID, err)
	}
	done := map[string]string{protocol.BehaviorAllow: "allowed", protocol.BehaviorDeny: "denied"}[behavior]
	return g.done(struct {
		RequestID string `json:"request_id"`
		Behavior  string `json:"behavior"`
		Session   string `json:"session"`
	}{c.ID, behavior, r.Detail}, "%s %s (%s)", done, c.ID, r.Detail)
}
