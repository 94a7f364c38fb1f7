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

// turnEvents maps each runtime's hook events to the turn boundary they
// are: the session's start, a prompt, after a tool call.
var turnEvents = map[string]map[string]string{
	RuntimeCodex: {
		"SessionStart":     eventSessionStart,
		"UserPromptSubmit": eventUserPromptSubmit,
		"PostToolUse":      eventPostToolUse,
	},
	RuntimeGemini: {
		"SessionStart": eventSessionStart,
		"BeforeAgent":  eventUserPromptSubmit,
		"AfterTool":    eventPostToolUse,
	},
}

// answerHook answers one request from `conclave hook`.
func (b *Bridge) answerHook(ctx context.Context, req *HookRequest) HookReply {
	events, ok := turnEvents[req.Runtime]
	if !ok {
		return HookReply{Error: fmt.Sprintf("unknown runtime %q", req.Runtime)}
	}
	boundary, ok := events[req.Event]
	if !ok {
		return HookReply{Error: fmt.Sprintf("%s hook event %q is not one conclave answers", req.Runtime, req.Event)}
	}
	if ctx.Err() != nil {
		return HookReply{Error: "the bridge is shutting down"}
	}
	return HookReply{Context: b.turnContext(boundary)}
}
