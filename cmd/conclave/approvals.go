package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/conclave/conclave/protocol"
)

// ApprovalsCmd lists the permission requests that Claude Code sessions of
// the caller's user are waiting on.
type ApprovalsCmd struct {
	serverFlag
	Watch bool `name:"watch" short:"w" help:"After the list, stream new requests and their outcomes until Ctrl-C."`
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
	s, err := g.connect(ctx, c.Server, co)
	if err != nil {
		return err
	}
	defer s.conn.Close()
	r, err := s.request(ctx, &protocol.Frame{Type: protocol.TPermissionList})
	if err == nil {
		r, err = expect(r, protocol.TPermissions)
	}
	if err != nil {
		return fmt.Errorf("list permission requests: %w", err)
	}
	now := time.Now()
	lines := make([]permissionLine, 0, len(r.Permissions))
	for _, p := range r.Permissions {
		lines = append(lines, permissionLine{Kind: protocol.TPermissionRequest, From: p.From, RequestID: p.RequestID,
			ToolName: p.ToolName, Description: p.Description, InputPreview: p.InputPreview, TsMs: p.TsMs,
			AgeMs: max(0, now.UnixMilli()-p.TsMs)})
	}
	switch {
	case g.JSON && !c.Watch:
		return g.printJSON(lines)
	case len(lines) == 0 && !g.JSON:
		g.printf("no pending permission requests\n")
	}
	for _, l := range lines {
		printPermission(g, l, now, "")
	}
	if !c.Watch {
		return nil
	}
	fmt.Fprintf(g.Stderr, "watching permission requests of %s — Ctrl-C to stop\n", userOf(s.conn.Path()))
	for {
		select {
		case <-ctx.Done():
			return nil
		case f, ok := <-s.conn.Events():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("connection to %s lost: %w", s.srv.URL, connErr(s))
			}
			if l, ok := permissionEvent(f); ok {
				printPermission(g, l, time.Now(), "")
			}
		}
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
