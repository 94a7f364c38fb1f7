package bridge

import (
	"context"
	"fmt"
)

// Runtimes that reach the bridge through the hook socket.
const (
	RuntimeCodex  = "codex"
	RuntimeGemini = "gemini"
)

// eventPermissionRequest is Codex's hook event before a command runs
// outside its sandbox.
const eventPermissionRequest = "PermissionRequest"

// turnEvents maps each runtime's hook events to what they are to the
// bridge: a turn boundary (the session's start, a prompt, after a tool
// call), the agent finishing (Stop), or a permission request.
var turnEvents = map[string]map[string]string{
	RuntimeCodex: {
		"SessionStart":         eventSessionStart,
		"UserPromptSubmit":     eventUserPromptSubmit,
		"PostToolUse":          eventPostToolUse,
		"Stop":                 eventStop,
		eventPermissionRequest: eventPermissionRequest,
	},
	RuntimeGemini: {
		"SessionStart": eventSessionStart,
		"BeforeAgent":  eventUserPromptSubmit,
		"AfterTool":    eventPostToolUse,
		"AfterAgent":   eventStop,
	},
}

// answerHook answers one request from `conclave hook`.
func (b *Bridge) answerHook(ctx context.Context, req *HookRequest) HookReply {
	events, ok := turnEvents[req.Runtime]
	if !ok {
		return HookReply{Error: fmt.Sprintf("unknown runtime %q", req.Runtime)}
	}
	event, ok := events[req.Event]
	if !ok {
		return HookReply{Error: fmt.Sprintf("%s hook event %q is not one conclave answers", req.Runtime, req.Event)}
	}
	if ctx.Err() != nil {
		return HookReply{Error: "the bridge is shutting down"}
	}
	switch event {
	case eventPermissionRequest:
		if req.WaitMs <= 0 {
			return HookReply{Message: "the hook gives no time to wait for a person; not relayed"}
		}
		return b.askPermission(ctx, req)
	case eventStop:
		if b.inbox == nil {
			return HookReply{}
		}
		// A Stop that does not follow a continuation ends a turn the user
		// (or the session's start) began: the bound starts again. Gemini
		// CLI runs BeforeAgent again for a continuation, so prompts do not
		// reset it.
		if !req.StopHookActive {
			b.stops.reset()
		}
		text, ok := b.keepGoing()
		if !ok {
			return HookReply{}
		}
		return HookReply{Continue: text}
	}
	return HookReply{Context: b.turnContext()}
}
