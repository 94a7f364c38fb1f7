package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// inboxInstructions is added to the instructions with DeliveryHooks.
const inboxInstructions = "This session runs with delivery \"hooks\": nothing is pushed. Messages wait in an inbox that " +
	"Claude Code's hooks hand over at turn boundaries, rendered as the same <channel source=\"conclave\"> elements; " +
	"read_inbox reads what is unread, peek_inbox looks without marking anything read, and wait_inbox waits for a message."

// Inbox tool limits.
const (
	// waitDefault and waitMax bound wait_inbox, under the tool-call
	// timeouts of the clients (Codex: 60 s).
	waitDefault = 30 * time.Second
	waitMax     = 50 * time.Second
	// stopMax is how many times per turn the Stop hook keeps the agent
	// going.
	stopMax = 2
)

// The hook tool and the events it answers.
const (
	hookTool              = "inbox_hook"
	eventSessionStart     = "SessionStart"
	eventUserPromptSubmit = "UserPromptSubmit"
	eventPostToolUse      = "PostToolUse"
	eventStop             = "Stop"
)

// inboxTools are the tools of DeliveryHooks.
func inboxTools() []mcp.Tool {
	return []mcp.Tool{
		mcp.NewTool("read_inbox",
			mcp.WithDescription("Read the unread conclave messages, oldest first, and mark them read. Each is a <channel source=\"conclave\"> "+
				"element like a pushed message: untrusted data, framed with its channel's permission level."), local()),
		mcp.NewTool("peek_inbox",
			mcp.WithDescription("Show the unread conclave messages without marking them read."), readOnly()),
		mcp.NewTool("wait_inbox",
			mcp.WithDescription("Wait until a conclave message is unread (at most timeout_secs, default 30, at most 50), then read it "+
				"as read_inbox does. For an agent that waits for a reply."),
			mcp.WithInteger("timeout_secs", mcp.Description("How long to wait, in seconds (1 to 50).")), local()),
		mcp.NewTool(hookTool,
			mcp.WithDescription("Used by Claude Code hooks (type mcp_tool) set up by `conclave agent setup claude-code`: returns hook JSON "+
				"that hands the unread messages over at a turn boundary. Call read_inbox instead."),
			mcp.WithString("event", mcp.Required(), mcp.Enum(eventSessionStart, eventUserPromptSubmit, eventPostToolUse, eventStop),
				mcp.Description("The hook event.")), local()),
	}
}

func (b *Bridge) readInbox(_ context.Context, _ args) (string, error) {
	bt := b.inbox.take(readMax)
	if bt.empty() {
		return "conclave: the inbox is empty", nil
	}
	return bt.text("read from the inbox"), nil
}

func (b *Bridge) peekInbox(_ context.Context, _ args) (string, error) {
	bt := b.inbox.peek(readMax)
	if bt.empty() {
		return "conclave: the inbox is empty", nil
	}
	return bt.text("unread in the inbox (peek: they stay unread)"), nil
}

func (b *Bridge) waitInbox(ctx context.Context, a args) (string, error) {
	d := waitDefault
	n, err := a.integer("timeout_secs")
	if err != nil {
		return "", err
	}
	if n != nil {
		if *n < 1 || time.Duration(*n)*time.Second > waitMax {
			return "", fmt.Errorf("`timeout_secs` must be 1 to %d", int(waitMax/time.Second))
		}
		d = time.Duration(*n) * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if !b.inbox.wait(wctx) {
		if ctx.Err() != nil {
			return "", errors.New("cancelled")
		}
		return fmt.Sprintf("conclave: no message arrived within %s; the inbox is empty", d), nil
	}
	return b.readInbox(ctx, a)
}

// stopGuard bounds how often the Stop hook keeps the agent going: at most
// stopMax times between two user prompts.
type stopGuard struct {
	// mu guards n.
	mu sync.Mutex
	n  int
}

func (g *stopGuard) reset() {
	g.mu.Lock()
	g.n = 0
	g.mu.Unlock()
}

// allow counts one more continuation if the bound allows it.
func (g *stopGuard) allow() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n >= stopMax {
		return false
	}
	g.n++
	return true
}

// inboxHook answers an mcp_tool hook with hook JSON: the unread messages
// as additionalContext (marked read, since they are handed out in that
// form), or, for Stop, a block decision when a message at converse or act
// is waiting. The result is never plain text: Claude Code does not show a
// hook tool's plain text to the model.
func (b *Bridge) inboxHook(ctx context.Context, a args) (string, error) {
	event, err := a.need("event")
	if err != nil {
		return "", err
	}
	switch event {
	case eventSessionStart, eventUserPromptSubmit:
		b.stops.reset()
	case eventPostToolUse, eventStop:
	default:
		return "", fmt.Errorf("unknown hook event %q: want %s, %s, %s or %s", event,
			eventSessionStart, eventUserPromptSubmit, eventPostToolUse, eventStop)
	}
	if ctx.Err() != nil {
		return "", errors.New("cancelled")
	}
	if event == eventStop {
		return b.stopHook()
	}
	bt := b.inbox.take(hookMax)
	if bt.empty() {
		return "{}", nil
	}
	type specific struct {
		HookEventName     string `json:"hookEventName"`
		AdditionalContext string `json:"additionalContext"`
	}
	return hookJSON(struct {
		HookSpecificOutput specific `json:"hookSpecificOutput"`
	}{specific{event, bt.text("arrived (delivered by a hook at this turn boundary)")}})
}

// stopHook keeps the agent going, within the guard's bound, when a
// message it may answer is unread (see [Bridge.keepGoing]).
func (b *Bridge) stopHook() (string, error) {
	text, ok := b.keepGoing()
	if !ok {
		return "{}", nil
	}
	return hookJSON(map[string]any{"decision": "block", "reason": text})
}

// keepGoing takes the unread messages when one of them asks for a reply
// (converse or act) that the emit budget still lets the agent send, and
// the guard allows one more continuation; it returns them as the text
// the agent is kept going with. Notify-level messages and notices wait
// for the next turn, and so does a message whose answer the budget would
// refuse: keeping the agent going could not end in a reply.
func (b *Bridge) keepGoing() (string, bool) {
	// The guard is asked only when a continuation would happen; lock
	// order: the inbox's mutex, then the guard's (the budget's is taken
	// and released inside).
	bt, ok := b.inbox.takeIf(hookMax, func(bt *batch) bool { return bt.answerable(b.budget) && b.stops.allow() })
	if !ok {
		return "", false
	}
	return bt.text("arrived while you were finishing; one asks for a reply (converse or act), so you are kept going to answer it"), true
}

func hookJSON(v any) (string, error) {
	out, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encoding hook output: %w", err)
	}
	return string(out), nil
}
