package main

import (
	"os"
	"path/filepath"
	"slices"

	"github.com/conclave/conclave/agentsetup"
)

// runCommandHooks sets up a runtime whose hooks can only run commands
// (codex, gemini): the bridge with delivery "hooks" as its MCP server,
// and `conclave hook <runtime>` at its turn boundaries.
func (c *AgentSetupCmd) runCommandHooks(g *Globals, project string) error {
	argv, err := c.bridgeArgv(g)
	if err != nil {
		return err
	}
	if !slices.Contains(argv, "--config-dir") {
		// The runtimes start MCP servers with a filtered environment
		// (Codex drops most variables): name the config dir outright, so
		// that the bridge and the hook agree on it and on the hook socket.
		dir, err := g.ConfigDir()
		if err != nil {
			return err
		}
		if dir, err = filepath.Abs(dir); err != nil {
			return err
		}
		argv = slices.Insert(argv, 1, "--config-dir", dir)
	}
	i := slices.Index(argv, "bridge")
	bridgeArgv := slices.Insert(argv, i+1, "--delivery", "hooks")
	hookArgv := append(slices.Clone(argv[:i]), "hook", c.Runtime)
	home, err := os.UserHomeDir()
	if err != nil {
		return err
	}
	opts := &agentsetup.Options{
		Project:   project,
		Bridge:    bridgeArgv,
		Hook:      hookArgv,
		Home:      home,
		CodexHome: os.Getenv("CODEX_HOME"),
		Stop:      c.Stop,
		Remove:    c.Remove,
	}
	plan := agentsetup.Codex
	if c.Runtime == "gemini" {
		plan = agentsetup.Gemini
	}
	p, err := plan(opts)
	if err != nil {
		return err
	}
	if !p.Changed() {
		if c.Remove {
			g.printf("nothing to remove in %s\n", project)
		} else {
			g.printf("✓ %s is set up already (nothing to change)\n", project)
		}
		return nil
	}
	g.printf("%s", p.Diff())
	if c.DryRun {
		g.printf("dry run: nothing written\n")
		return nil
	}
	if err := p.Apply(); err != nil {
		return err
	}
	for _, f := range p.Files {
		if !f.Changed() {
			continue
		}
		verb := "wrote"
		if !f.Exists {
			verb = "removed"
		}
		g.printf("✓ %s %s\n", verb, f.Path)
	}
	if !c.Remove {
		for _, n := range p.Notes {
			g.printf("note: %s\n", n)
		}
		g.printf("%s sessions started in %s now get conclave messages at turn boundaries (delivery: hooks, through `conclave hook %s`).\n", runtimeName(c.Runtime), project, c.Runtime)
	}
	return nil
}

func runtimeName(rt string) string {
	if rt == "codex" {
		return "Codex CLI"
	}
	return "Gemini CLI"
}
