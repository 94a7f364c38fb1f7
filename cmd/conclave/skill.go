package main

import (
	"io"

	"github.com/alecthomas/kong"

	"github.com/conclave/conclave/skill"
)

// SkillCmd prints or installs the packaged Claude Code skill. Both verbs
// render the same document from this binary's command tree.
type SkillCmd struct {
	Show      SkillShowCmd      `cmd:"" default:"1" help:"Print the skill (SKILL.md) to stdout; what 'conclave skill' does."`
	Reference SkillReferenceCmd `cmd:"" help:"Print the skill's command reference (reference.md, generated from this binary) to stdout."`
	Install   SkillInstallCmd   `cmd:"" help:"Write the skill to DIR/conclave/ (SKILL.md and reference.md), where Claude Code finds it as /conclave."`
}

// SkillReferenceCmd prints the generated command reference.
type SkillReferenceCmd struct{}

// Run writes reference.md to stdout.
func (c *SkillReferenceCmd) Run(g *Globals, kctx *kong.Context) error {
	_, err := io.WriteString(g.Stdout, skill.ReferenceDocument(kctx.Model))
	return err
}

// SkillShowCmd prints the skill.
type SkillShowCmd struct{}

// Run writes the document to stdout, also with --json: it is a document,
// not data.
func (c *SkillShowCmd) Run(g *Globals, kctx *kong.Context) error {
	_, err := io.WriteString(g.Stdout, skill.Document(kctx.Model))
	return err
}

// SkillInstallCmd writes the skill where Claude Code looks for it.
type SkillInstallCmd struct {
	Dir string `name:"dir" type:"path" placeholder:"DIR" help:"The skills directory (default: ~/.claude/skills)."`
}

// Run writes the document and prints `✓ installed the conclave skill to
// <path>`, or {"path": …} with --json.
func (c *SkillInstallCmd) Run(g *Globals, kctx *kong.Context) error {
	dir := c.Dir
	if dir == "" {
		var err error
		if dir, err = skill.DefaultDir(); err != nil {
			return err
		}
	}
	path, err := skill.Install(dir, skill.Document(kctx.Model), skill.ReferenceDocument(kctx.Model))
	if err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(struct {
			Path string `json:"path"`
		}{path})
	}
	g.printf("✓ installed the conclave skill to %s\n", path)
	return nil
}
