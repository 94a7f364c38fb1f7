package bridge

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The hook socket: runtimes that can only run command hooks (Codex CLI,
// Gemini CLI) run `conclave hook <runtime>` at their turn boundaries, and
// that process asks its session's bridge over a unix socket. The socket
// is named after the bridge's parent process, the runtime that started
// it; the hook command finds it by walking up its own ancestors, so each
// session reaches its own bridge, also with several sessions in one
// directory. Only the user can open it: the directory is 0700 and the
// socket 0600.

// Hook socket limits.
const (
	// hookRequestMax bounds one request line.
	hookRequestMax = 1 << 20
	// hookConnTimeout bounds one connection to the socket, under the
	// hook time limit setup configures (10 s).
	hookConnTimeout = 8 * time.Second
)

// HookRequest is what `conclave hook` sends: the runtime, its hook event
// and what the runtime told the hook about it.
type HookRequest struct {
	Runtime   string          `json:"runtime"`              // "codex", "gemini"
	Event     string          `json:"event"`                // the runtime's own event name
	SessionID string          `json:"session_id,omitempty"` // the runtime's session id, as given to the hook
	ToolName  string          `json:"tool_name,omitempty"`
	ToolInput json.RawMessage `json:"tool_input,omitempty"`
	// StopHookActive is the runtime's stop_hook_active: this Stop follows
	// a continuation a Stop hook asked for.
	StopHookActive bool `json:"stop_hook_active,omitempty"`
	// WaitMs is how long a permission request may wait for a verdict
	// (at most PermissionWaitMax); 0 means it is not relayed.
	WaitMs int64 `json:"wait_ms,omitempty"`
}

// HookReply is the bridge's answer. Context, if not empty, is text for
// the model, already delimited as <channel> elements. Continue, for a
// Stop, is the same kind of text when the agent is to be kept going to
// answer it. Decision is "allow" or "deny" for a permission request, ""
// to leave it to the runtime; Message then says who decided, or why
// nobody did.
type HookReply struct {
	Context  string `json:"context,omitempty"`
	Continue string `json:"continue,omitempty"`
	Decision string `json:"decision,omitempty"`
	Message  string `json:"message,omitempty"`
	Error    string `json:"error,omitempty"`
}

// HookSocketDir returns the directory of the hook sockets, configDir/run,
// and creates it 0700 if needed. A directory that is not the user's own
// is refused; one that others can open is closed first. It is not under
// $XDG_RUNTIME_DIR: Codex starts MCP servers with a filtered environment
// that lacks it, while its hooks have it, so the two would disagree; the
// config dir reaches both as --config-dir (agent setup writes it).
func HookSocketDir(configDir string) (string, error) {
	dir := filepath.Join(configDir, "run")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating the hook socket directory: %w", err)
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return "", fmt.Errorf("hook socket directory: %w", err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("hook socket directory %s is not a directory", dir)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Getuid() {
		return "", fmt.Errorf("hook socket directory %s belongs to another user", dir)
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return "", fmt.Errorf("hook socket directory %s is open to others: %w", dir, err)
		}
	}
	return dir, nil
}

// HookSocketPath is the socket of the bridge whose parent process is pid.
func HookSocketPath(dir string, pid int) string {
	return filepath.Join(dir, strconv.Itoa(pid)+".sock")
}

// hookListener listens on path, replacing a stale socket a dead bridge
// left there. A socket that answers belongs to a live bridge of the same
// runtime process: the second bridge then has no hook socket.
func hookListener(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another bridge of this session already listens on %s", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing the stale hook socket: %w", err)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("hook socket: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("hook socket: %w", err)
	}
	return ln, nil
}

// serveHooks answers hook requests on ln until ctx ends, then closes ln
// and waits for the connections it is answering.
func (b *Bridge) serveHooks(ctx context.Context, ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				b.log.Warn("hook socket closed", "err", err)
			}
			return
		}
		wg.Go(func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(hookConnTimeout))
			b.answerHookConn(ctx, c)
		})
	}
}

func (b *Bridge) answerHookConn(ctx context.Context, c net.Conn) {
	r := bufio.NewReader(io.LimitReader(c, hookRequestMax))
	line, err := r.ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return
	}
	var req HookRequest
	var reply HookReply
	if err := json.Unmarshal(line, &req); err != nil {
		reply.Error = "malformed hook request"
	} else {
		if req.WaitMs > 0 {
			// A permission request waits for a person: the connection
			// lives as long as its wait, and the wait ends in time to
			// carry the reply back.
			wait := min(time.Duration(req.WaitMs)*time.Millisecond, PermissionWaitMax)
			_ = c.SetDeadline(time.Now().Add(wait + hookReplyMargin))
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, wait)
			defer cancel()
		}
		reply = b.answerHook(ctx, &req)
	}
	out, _ := json.Marshal(reply) // HookReply always encodes
	_, _ = c.Write(append(out, '\n'))
}

// AskHook sends req to the bridge listening on path and returns its
// reply, waiting until ctx's deadline (without one, hookConnTimeout).
func AskHook(ctx context.Context, path string, req *HookRequest) (*HookReply, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(hookConnTimeout)
	}
	_ = c.SetDeadline(deadline)
	data, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding the hook request: %w", err)
	}
	if _, err := c.Write(append(data, '\n')); err != nil {
		return nil, fmt.Errorf("asking the bridge: %w", err)
	}
	line, err := bufio.NewReader(io.LimitReader(c, hookRequestMax)).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return nil, fmt.Errorf("reading the bridge's answer: %w", err)
	}
	var reply HookReply
	if err := json.Unmarshal(line, &reply); err != nil {
		return nil, fmt.Errorf("the bridge's answer is malformed: %w", err)
	}
	return &reply, nil
}
