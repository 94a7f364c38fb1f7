package bridge

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// TestCommandHookStopBounded: Codex's Stop and Gemini CLI's AfterAgent
// keep the agent going for a converse message at most stopMax times in a
// row of continuations (stop_hook_active), never for notify, and a Stop
// that ends a new turn starts the bound again. Gemini CLI's BeforeAgent,
// which it runs again for each continuation, does not.
func TestCommandHookStopBounded(t *testing.T) {
	for rt, stop := range map[string]string{RuntimeCodex: "Stop", RuntimeGemini: "AfterAgent"} {
		t.Run(rt, func(t *testing.T) {
			b := newTestBridge(t, oneServer("ws://s"), func(o *Options) { o.Delivery = DeliveryHooks })
			ask := func(event string, active bool) HookReply {
				t.Helper()
				r := b.answerHook(context.Background(), &HookRequest{Runtime: rt, Event: event, StopHookActive: active})
				if r.Error != "" {
					t.Fatal(r.Error)
				}
				return r
			}
			b.inbox.add(msgEntry("ops", 1, identity.Notify, "fyi"))
			if r := ask(stop, false); r.Continue != "" {
				t.Errorf("a notify message kept the agent going: %+v", r)
			}
			prompt := map[string]string{RuntimeCodex: "UserPromptSubmit", RuntimeGemini: "BeforeAgent"}[rt]
			for i := range stopMax + 1 {
				b.inbox.add(msgEntry("ops", uint64(10+i), identity.Converse, "question"))
				r := ask(stop, i > 0)
				if i < stopMax && !strings.Contains(r.Continue, `<channel source="conclave"`) {
					t.Errorf("stop %d = %+v, want a continuation with the message", i, r)
				}
				if i == stopMax && r.Continue != "" {
					t.Errorf("stop %d kept the agent going past the bound", i)
				}
				if i < stopMax {
					ask(prompt, false) // Gemini CLI's continuation runs BeforeAgent again
				}
			}
			b.inbox.add(msgEntry("ops", 50, identity.Act, "again"))
			if r := ask(stop, false); r.Continue == "" {
				t.Errorf("the Stop of a new turn = %+v, want a continuation", r)
			}
		})
	}
}

// TestStopRespectsEmitBudget: a message whose answer the emit budget
// would refuse does not keep the agent going; it waits unread.
func TestStopRespectsEmitBudget(t *testing.T) {
	cfg := oneServer("ws://s")
	cfg.EmitBudget = 1
	b := newTestBridge(t, cfg, func(o *Options) { o.Delivery = DeliveryHooks })
	if err := b.budget.take("ws://s", "channel ops"); err != nil {
		t.Fatal(err)
	}
	b.inbox.add(msgEntry("ops", 1, identity.Converse, "question"))
	r := b.answerHook(context.Background(), &HookRequest{Runtime: RuntimeCodex, Event: "Stop"})
	if r.Continue != "" {
		t.Errorf("kept going with the budget of #ops spent: %+v", r)
	}
	if p := b.inbox.peek(readMax); len(p.entries) != 1 {
		t.Error("the message was consumed")
	}
	b.inbox.add(msgEntry("dev", 2, identity.Converse, "other"))
	if r := b.answerHook(context.Background(), &HookRequest{Runtime: RuntimeCodex, Event: "Stop"}); !strings.Contains(r.Continue, "other") {
		t.Errorf("a message of a channel with budget left = %+v", r)
	}
}

// TestHookPermission: a Codex PermissionRequest goes to the links as a
// permission request the model never sees; the first verdict from the
// server is the hook's decision, a later one is dropped; no verdict
// within the wait leaves the decision to Codex.
func TestHookPermission(t *testing.T) {
	b := newTestBridge(t, oneServer("ws://a"), func(o *Options) { o.Delivery = DeliveryHooks })
	input := json.RawMessage(`{"command":"touch x","description":"may I?"}`)
	ask := func(wait time.Duration) chan HookReply {
		out := make(chan HookReply, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			out <- b.answerHook(ctx, &HookRequest{Runtime: RuntimeCodex, Event: "PermissionRequest", ToolName: "Bash",
				ToolInput: input, WaitMs: wait.Milliseconds()})
		}()
		return out
	}
	pending := func() *permRequest {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if live := b.perms.live(b.now()); len(live) == 1 {
				return live[0]
			}
			if time.Now().After(deadline) {
				t.Fatal("the request never became pending")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, behavior := range []string{"allow", "deny"} {
		out := ask(time.Minute)
		r := pending()
		if r.tool != "Bash" || r.desc != "Run the shell command: touch x (the agent says: may I?)" || r.preview != string(input) {
			t.Errorf("relayed %+v", r)
		}
		if err := (&protocol.Frame{Type: protocol.TPermissionRequest, ID: "1", RequestID: r.id, ToolName: r.tool}).Validate(); err != nil {
			t.Errorf("request id %q: %v", r.id, err)
		}
		b.onVerdict(b.links[0], &protocol.Frame{Type: protocol.TPermissionVerdict, RequestID: strings.ToUpper(r.id), Behavior: behavior, From: "aaron/phone/cli"})
		got := <-out
		if got.Decision != behavior || !strings.Contains(got.Message, "by aaron/phone/cli") {
			t.Errorf("%s: reply %+v", behavior, got)
		}
		b.onVerdict(b.links[0], &protocol.Frame{Type: protocol.TPermissionVerdict, RequestID: r.id, Behavior: "allow"})
		if n := queued(b); len(n) != 0 {
			t.Errorf("the session was told %+v", n)
		}
	}
	// Nobody answers: no decision, and the request is no longer pending.
	got := <-ask(50 * time.Millisecond)
	if got.Decision != "" || !strings.Contains(got.Message, "in time") {
		t.Errorf("unanswered: %+v", got)
	}
	if live := b.perms.live(b.now()); len(live) != 0 {
		t.Errorf("still pending: %+v", live)
	}
	// Every server refused to relay it: no decision at once.
	out := ask(time.Minute)
	r := pending()
	b.perms.refuse(r, len(b.links), "aaron has no approver machines")
	if got := <-out; got.Decision != "" || !strings.Contains(got.Message, "no approver machines") {
		t.Errorf("refused: %+v", got)
	}
	// A hook that gives no time to wait is not relayed.
	if got := b.answerHook(context.Background(), &HookRequest{Runtime: RuntimeCodex, Event: "PermissionRequest", ToolName: "Bash"}); got.Decision != "" || got.Message == "" {
		t.Errorf("no wait: %+v", got)
	}
	// Gemini CLI has no such event.
	if got := b.answerHook(context.Background(), &HookRequest{Runtime: RuntimeGemini, Event: "PermissionRequest"}); got.Error == "" {
		t.Errorf("gemini PermissionRequest: %+v", got)
	}
}
