package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/conclave/conclave/agentsetup"
	"github.com/conclave/conclave/bridge"
)

// Hook command limits.
const (
	// hookInputMax bounds what the runtime writes to the hook's stdin.
	hookInputMax = 4 << 20
	// hookDeadline bounds the whole hook, under the 10 s that agent
	// setup gives it in the runtime's configuration.
	hookDeadline = 8 * time.Second
	// ancestorsMax bounds the walk up the process tree.
	ancestorsMax = 32
	// permissionMargin is how long before the time limit agent setup gives
	// Codex's PermissionRequest hook the hook stops waiting for a person,
	// so that it answers (no decision: Codex asks itself) before Codex
	// kills it.
	permissionMargin = 10 * time.Second
)

// HookCmd is run by Codex CLI and Gemini CLI at their turn boundaries
// (agent setup configures it): it hands the runtime what its session's
// bridge has for the model, in the runtime's hook output format.
type HookCmd struct {
	Runtime        string        `arg:"" enum:"codex,gemini" help:"The runtime that runs this hook: codex or gemini."`
	PermissionWait time.Duration `name:"permission-wait" hidden:"" help:"How long a Codex PermissionRequest waits for an approver (default: the hook's time limit that agent setup writes, less 10s)."`
}

// hookInput is the part of the runtime's hook input that conclave reads;
// both runtimes write it as JSON on stdin.
type hookInput struct {
	Event          string          `json:"hook_event_name"`
	SessionID      string          `json:"session_id"`
	ToolName       string          `json:"tool_name"`
	ToolInput      json.RawMessage `json:"tool_input"`
	StopHookActive bool            `json:"stop_hook_active"`
}

// Run reads the hook input, finds the bridge of the session this hook
// runs in and prints the runtime's hook output JSON. With no bridge (not
// started yet, or not this session's), it prints {} and says why on
// stderr: the turn goes on without delivery, and a permission request is
// left to the runtime's own prompt.
func (c *HookCmd) Run(ctx context.Context, g *Globals) error {
	data, err := io.ReadAll(io.LimitReader(os.Stdin, hookInputMax))
	if err != nil {
		return fmt.Errorf("reading the hook input: %w", err)
	}
	var in hookInput
	if err := json.Unmarshal(data, &in); err != nil || in.Event == "" {
		return fmt.Errorf("the %s hook input is not JSON with a hook_event_name", c.Runtime)
	}
	dir, err := g.ConfigDir()
	if err != nil {
		return err
	}
	sockDir, err := bridge.HookSocketDir(dir)
	if err != nil {
		return err
	}
	req := &bridge.HookRequest{Runtime: c.Runtime, Event: in.Event, SessionID: in.SessionID, ToolName: in.ToolName,
		ToolInput: in.ToolInput, StopHookActive: in.StopHookActive}
	deadline := hookDeadline
	if c.Runtime == bridge.RuntimeCodex && in.Event == codexPermissionEvent {
		wait := c.PermissionWait
		if wait <= 0 {
			wait = agentsetup.CodexPermissionTimeout*time.Second - permissionMargin
		}
		wait = min(wait, bridge.PermissionWaitMax)
		req.WaitMs = wait.Milliseconds()
		deadline = wait + permissionMargin/2
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	reply, err := askAncestors(ctx, sockDir, req)
	if err != nil {
		what := "nothing delivered at this turn boundary"
		if req.WaitMs > 0 {
			what = "the permission request is left to " + runtimeName(c.Runtime) + "'s own prompt"
		}
		g.notice("conclave hook: " + err.Error() + "; " + what)
		_, err := io.WriteString(g.Stdout, "{}\n")
		return err
	}
	if reply.Error != "" {
		return errors.New(reply.Error)
	}
	if req.WaitMs > 0 && reply.Decision == "" {
		g.notice("conclave hook: " + reply.Message + "; the permission request is left to " + runtimeName(c.Runtime) + "'s own prompt")
	}
	out, err := json.Marshal(hookOutput(in.Event, reply))
	if err != nil {
		return fmt.Errorf("encoding the hook output: %w", err)
	}
	_, err = fmt.Fprintf(g.Stdout, "%s\n", out)
	return err
}

// codexPermissionEvent is Codex's hook event before a command runs
// outside its sandbox.
const codexPermissionEvent = "PermissionRequest"

// hookOutput is the runtime's hook output for a reply. Codex and Gemini
// CLI both read hookSpecificOutput.additionalContext at turn boundaries,
// and {"decision": "block", "reason": …} from Stop (Codex) and AfterAgent
// (Gemini CLI) as a prompt that keeps the agent going. Codex reads a
// permission decision from hookSpecificOutput.decision; without one it
// asks in its own way, and systemMessage tells the user why.
func hookOutput(event string, r *bridge.HookReply) any {
	switch {
	case r.Decision != "":
		d := map[string]any{"behavior": r.Decision}
		if r.Decision == "deny" {
			d["message"] = r.Message
		}
		return map[string]any{"hookSpecificOutput": map[string]any{"hookEventName": event, "decision": d}}
	case event == codexPermissionEvent && r.Message != "":
		return map[string]any{"systemMessage": "conclave: " + r.Message}
	case r.Continue != "":
		return map[string]any{"decision": "block", "reason": r.Continue}
	case r.Context != "":
		return map[string]any{"hookSpecificOutput": map[string]any{
			"hookEventName":     event,
			"additionalContext": r.Context,
		}}
	}
	return struct{}{}
}

// askAncestors asks the bridge whose parent is the nearest ancestor of
// this process that has one: the runtime process that started both the
// bridge (as its MCP server) and this hook.
func askAncestors(ctx context.Context, sockDir string, req *bridge.HookRequest) (*bridge.HookReply, error) {
	pid := os.Getppid()
	for range ancestorsMax {
		if pid <= 1 {
			break
		}
		path := bridge.HookSocketPath(sockDir, pid)
		if _, err := os.Stat(path); err == nil {
			reply, err := bridge.AskHook(ctx, path, req)
			if err == nil {
				return reply, nil
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("the bridge at %s did not answer in time", path)
			}
			// A socket a dead bridge left behind: keep looking.
		}
		next, err := parentPID(pid)
		if err != nil {
			break
		}
		pid = next
	}
	return nil, fmt.Errorf("no conclave bridge runs under this %s session (looked in %s for a socket named after each parent process)", req.Runtime, sockDir)
}

// parentPID returns the parent of pid: from /proc where there is one,
// else from ps.
func parentPID(pid int) (int, error) {
	if data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			return 0, errors.New("malformed /proc stat")
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			return 0, errors.New("malformed /proc stat")
		}
		return strconv.Atoi(f[1])
	}
	out, err := exec.Command("ps", "-o", "ppid=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		return 0, fmt.Errorf("finding the parent of %d: %w", pid, err)
	}
	return strconv.Atoi(strings.TrimSpace(string(out)))
}
