package bridge

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"strings"
	"time"

	"github.com/conclave/conclave/protocol"
)

// Codex's PermissionRequest hook asks before a command runs outside the
// sandbox. `conclave hook codex` hands it to its session's bridge, which
// relays it exactly as it relays Claude Code's permission requests: to
// the user's approver machines, never to the model; the first verdict
// from a person there is the hook's decision. No verdict within the
// hook's wait (every server refused to relay it, or nobody answered in
// time) leaves the decision to Codex's own approval prompt.

// Permission hook bounds.
const (
	// PermissionWaitMax bounds how long a hook waits for a verdict: the
	// server forgets the request after permissionTTL anyway.
	PermissionWaitMax = permissionTTL
	// hookReplyMargin is the time a hook connection gets beyond its wait
	// to carry the reply back.
	hookReplyMargin = 5 * time.Second
)

// requestIDLetters are the letters of the request ids the bridge makes
// for hooks, as Claude Code's: lower case, no l (it reads as 1).
const requestIDLetters = "abcdefghijkmnopqrstuvwxyz"

// newRequestID returns a fresh five-letter request id, short enough to
// type after `conclave approve`.
func newRequestID() string {
	var b [5]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	for i := range b {
		b[i] = requestIDLetters[int(b[i])%len(requestIDLetters)]
	}
	return string(b[:])
}

// askPermission relays a hook's permission request to the approver
// machines and waits, until ctx ends, for the first verdict. The reply's
// Decision is "allow" or "deny", or empty (with Message saying why) to
// leave the decision to the runtime.
func (b *Bridge) askPermission(ctx context.Context, req *HookRequest) HookReply {
	tool := req.ToolName
	if tool == "" || len(tool) > protocol.MaxToolNameLen {
		return HookReply{Message: "the permission request names no usable tool; not relayed"}
	}
	r := &permRequest{
		tool:    tool,
		desc:    truncateUTF8(permissionDescription(req), protocol.MaxDescriptionLen),
		preview: truncateUTF8(string(req.ToolInput), protocol.MaxInputPreviewLen),
		asked:   b.now(),
		answer:  make(chan permAnswer, 1),
	}
	for {
		r.id = newRequestID()
		if b.perms.add(r) {
			break
		}
	}
	// However the wait ends, the request is no longer pending here: a
	// verdict given after the hook gave up is dropped (and logged), and
	// the servers that relayed it are told to withdraw it.
	defer b.perms.take(r.id)
	if len(b.links) == 0 {
		return HookReply{Message: "the bridge has no server to relay it to"}
	}
	b.log.Info("permission request from a hook", "request", r.id, "runtime", req.Runtime, "tool", r.tool)
	for _, l := range b.links {
		l.wakePermissions()
	}
	select {
	case a := <-r.answer:
		if a.behavior == "" {
			return HookReply{Message: "not relayed to a person: " + a.refusal}
		}
		verb := "allowed"
		if a.behavior == protocol.BehaviorDeny {
			verb = "denied"
		}
		return HookReply{Decision: a.behavior, Message: verb + " by " + a.by + " through conclave"}
	case <-ctx.Done():
		if _, pending := b.perms.take(r.id); pending {
			b.withdrawPermission(r.id)
		}
		return HookReply{Message: "no approver answered request " + r.id + " in time"}
	}
}

// permissionDescription says what a hook's request would do, for the
// person who answers it: Codex's Bash requests carry the command and the
// model's justification for it.
func permissionDescription(req *HookRequest) string {
	var in struct {
		Command     string `json:"command"`
		Description string `json:"description"`
	}
	_ = json.Unmarshal(req.ToolInput, &in) // a tool input of another shape: described by its name
	var sb strings.Builder
	switch {
	case req.ToolName == "Bash" && in.Command != "":
		sb.WriteString("Run the shell command: " + in.Command)
	case in.Command != "":
		sb.WriteString(req.ToolName + ": " + in.Command)
	default:
		sb.WriteString("Use " + req.ToolName)
	}
	if in.Description != "" {
		sb.WriteString(" (the agent says: " + in.Description + ")")
	}
	return sb.String()
}
