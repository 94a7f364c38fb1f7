package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/conclave/conclave/agent"
)

// AgentCmd groups the verbs that configure coding-agent clients.
type AgentCmd struct {
	Setup AgentSetupCmd `cmd:"" help:"Configure a project's coding agent for conclave with turn-boundary delivery (hooks), for clients whose channels are off."`
}

// AgentSetupCmd writes (or removes) the bridge's MCP entry, the hooks and
// the hooks delivery mode in a project's Claude Code settings.
type AgentSetupCmd struct {
	Runtime string   `arg:"" enum:"claude-code,codex,gemini" help:"The client: claude-code, codex (.codex/config.toml) or gemini (.gemini/settings.json)."`
	Project string   `name:"project" type:"path" placeholder:"DIR" help:"The project directory (default: the current directory)."`
	DryRun  bool     `name:"dry-run" help:"Show the diff and write nothing."`
	Remove  bool     `name:"remove" help:"Undo an earlier setup: restore the files as they were."`
	Stop    bool     `name:"stop-hook" help:"Also add the Stop hook (Codex: Stop, Gemini CLI: AfterAgent): when a message at converse or act is waiting as the agent finishes, keep it going to answer (at most twice in a row; never for notify)."`
	As      string   `name:"as" placeholder:"HANDLE" help:"Pass --as HANDLE to the bridge."`
	Join    []string `name:"join" sep:"none" placeholder:"CHANNEL|URL#CHANNEL" help:"Pass --join to the bridge (repeatable)."`
}

// Run prints each file's diff, then writes it unless --dry-run.
func (c *AgentSetupCmd) Run(_ context.Context, g *Globals) error {
	project := c.Project
	if project == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("finding the current directory: %w", err)
		}
		project = wd
	}
	if c.Runtime != "claude-code" {
		return c.runCommandHooks(g, project)
	}
	o := &agent.Options{Project: project, Stop: c.Stop, Remove: c.Remove}
	if !c.Remove {
		argv, err := c.bridgeArgv(g)
		if err != nil {
			return err
		}
		o.Bridge = argv
	}
	plan, err := agent.ClaudeCode(o)
	if err != nil {
		return err
	}
	if len(plan.Changes) == 0 {
		if c.Remove {
			g.printf("nothing to remove in %s\n", project)
		} else {
			g.printf("✓ %s is set up already (nothing to change)\n", project)
		}
		return nil
	}
	for i := range plan.Changes {
		if plan.Changes[i].Path == agent.RecordFile {
			continue // setup's own bookkeeping, named below
		}
		g.printf("%s", plan.Changes[i].Diff())
	}
	if c.DryRun {
		g.printf("dry run: nothing written\n")
		return nil
	}
	if err := plan.Apply(); err != nil {
		return err
	}
	for _, ch := range plan.Changes {
		verb := "wrote"
		if ch.New == nil {
			verb = "removed"
		}
		g.printf("✓ %s %s\n", verb, filepath.Join(project, ch.Path))
	}
	if !c.Remove {
		g.printf("Claude Code sessions started in %s now get conclave messages at turn boundaries (delivery: hooks).\n", project)
	}
	return nil
}

// bridgeArgv is the command Claude Code runs: this executable (or
// "conclave" when run through go run), the config dir when one was
// chosen, and the bridge flags.
func (c *AgentSetupCmd) bridgeArgv(g *Globals) ([]string, error) {
	exe, err := os.Executable()
	if err != nil || strings.Contains(exe, string(filepath.Separator)+"go-build") {
		exe = "conclave"
	}
	argv := []string{exe}
	if g.configDirFlag != "" {
		dir, err := filepath.Abs(g.configDirFlag)
		if err != nil {
			return nil, fmt.Errorf("--config-dir: %w", err)
		}
		argv = append(argv, "--config-dir", dir)
	}
	argv = append(argv, "bridge")
	if c.As != "" {
		if err := checkNewName("session handle", c.As); err != nil {
			return nil, err
		}
		argv = append(argv, "--as", c.As)
	}
	for _, j := range c.Join {
		if j == "" {
			return nil, errors.New("--join needs a channel")
		}
		argv = append(argv, "--join", j)
	}
	return argv, nil
}
