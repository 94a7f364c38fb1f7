package main

import (
	"context"
	"os"

	"github.com/conclave/conclave/bridge"
)

// BridgeCmd runs the MCP stdio server that Claude Code starts:
//
//	claude mcp add --scope local conclave -- conclave bridge --join ops
type BridgeCmd struct {
	Server []string `name:"server" sep:"none" placeholder:"URL" help:"Connect only to this registered server (repeatable; default: every registered server)."`
	As     string   `name:"as" placeholder:"HANDLE" help:"This session's handle, never renamed: refused while another process holds it (default: the working directory's name; a second bridge there becomes NAME-2, NAME-3…)."`
	Join   []string `name:"join" sep:"none" placeholder:"CHANNEL|URL#CHANNEL" help:"Join this channel as soon as the server is connected and after every reconnect (repeatable; URL#CHANNEL when several servers are registered)."`
	// Delivery is set per project by `conclave agent setup`.
	Delivery string `name:"delivery" enum:"push,hooks" default:"push" help:"How messages reach the session: push (notifications/claude/channel, for Claude Code with channels on) or hooks (an inbox that hooks and the inbox tools read at turn boundaries, for clients without channels; see conclave agent setup)."`
}

// Run speaks MCP on stdin/stdout until stdin ends or a signal arrives.
// stdout carries only JSON-RPC: os.Stdout is pointed at stderr so that no
// stray print can corrupt it.
func (c *BridgeCmd) Run(ctx context.Context, g *Globals) error {
	dir, cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	key, err := g.loadKey(dir)
	if err != nil {
		return err
	}
	cwd, err := os.Getwd()
	if err != nil {
		cwd = ""
	}
	// `conclave hook` finds this bridge by the runtime process that
	// started it (Codex CLI, Gemini CLI run hooks as commands).
	sock := ""
	if sockDir, err := bridge.HookSocketDir(dir); err != nil {
		g.Logger.Warn("no hook socket", "err", err)
	} else {
		sock = bridge.HookSocketPath(sockDir, os.Getppid())
	}
	b, err := bridge.New(&bridge.Options{
		HookSocket:    sock,
		Key:           key,
		Config:        cfg,
		Servers:       c.Server,
		Handle:        c.As,
		DefaultHandle: bridge.DefaultHandle(cwd),
		Joins:         c.Join,
		Version:       g.Version,
		Logger:        g.Logger,
		Delivery:      c.Delivery,
		ChannelsSeen: func(server string, names []string, all bool) {
			g.rememberChannels(server, channelChange{replace: all, add: names})
		},
	})
	if err != nil {
		return err
	}
	proto := g.Stdout
	if proto == os.Stdout {
		os.Stdout = os.Stderr
	}
	return b.Serve(ctx, os.Stdin, proto)
}
