package skill

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/conclave/conclave/atomicfile"
)

// body is the curated part of the skill: everything above the command
// reference.
//
//go:embed body.md
var body string

// Name is the skill's name: its directory under the skills dir and the
// name in its front matter.
const Name = "conclave"

// FileName is the file Claude Code reads in a skill's directory.
const FileName = "SKILL.md"

// ReferenceFileName is the generated command reference beside SKILL.md,
// which SKILL.md links to: Claude Code reads it only when the task needs
// it, so the skill's body stays short.
const ReferenceFileName = "reference.md"

// Document returns SKILL.md for the command tree app: the curated body,
// then a short "## Command reference" section pointing to
// [ReferenceFileName].
func Document(app *kong.Application) string {
	return strings.TrimRight(body, "\n") + "\n\n## Command reference\n\n" +
		fmt.Sprintf("Every command's usage, arguments and flags (its `--help`, generated from the `%s` binary "+
			"that installed this skill) are in [%s](%s), one section per command. Read the section of a command "+
			"before using a flag this guide does not show; `%s <command> --help` prints the same.\n",
			app.Name, ReferenceFileName, ReferenceFileName, app.Name)
}

// ReferenceDocument returns reference.md: a title, then [Reference].
func ReferenceDocument(app *kong.Application) string {
	return "# `" + app.Name + "` command reference\n\n" + Reference(app)
}

// Reference returns the generated "## Command reference" section: a note
// saying where it comes from, then for the root and, depth first, every
// command that is not hidden, a heading "### `conclave <path>`" and a
// fenced block with that command's usage, help, arguments, flags and
// subcommands.
func Reference(app *kong.Application) string {
	var b strings.Builder
	b.WriteString("## Command reference\n\n")
	fmt.Fprintf(&b, "Generated from the `%s` command tree when this document was printed, so it matches "+
		"the binary that printed it (`%s <command> --help` says the same). Global flags are listed once, "+
		"under `%s`; every command accepts them, before or after its name.\n", app.Name, app.Name, app.Name)
	for _, n := range Commands(app) {
		fmt.Fprintf(&b, "\n### `%s`\n\n```text\n%s```\n", CommandLine(app, n), helpText(app, n))
	}
	return b.String()
}

// Commands returns the root and every command below it that is not hidden,
// depth first in declaration order: the sections of [Reference].
func Commands(app *kong.Application) []*kong.Node {
	var out []*kong.Node
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		out = append(out, n)
		for _, c := range n.Children {
			if !c.Hidden {
				walk(c)
			}
		}
	}
	walk(app.Node)
	return out
}

// CommandLine returns how n is typed: the application's name followed by
// the names of the commands down to n ("conclave channel create"), with an
// argument node as "<name>". Aliases are left out.
func CommandLine(app *kong.Application, n *kong.Node) string {
	var parts []string
	for ; n != nil && n.Type != kong.ApplicationNode; n = n.Parent {
		name := n.Name
		if n.Type == kong.ArgumentNode {
			name = "<" + name + ">"
		}
		parts = append([]string{name}, parts...)
	}
	return strings.Join(append([]string{app.Name}, parts...), " ")
}

// helpText renders n like its --help, without wrapping and without the
// global flags except on the root.
func helpText(app *kong.Application, n *kong.Node) string {
	var b strings.Builder
	usage := CommandLine(app, n)
	if n.Type == kong.ApplicationNode {
		if len(n.Children) > 0 {
			usage += " <command>"
		}
		usage += " [flags]"
	} else {
		// Summary starts with Path, which shows aliases; the usage line
		// shows the command as typed.
		usage += strings.TrimPrefix(n.Summary(), n.Path())
	}
	fmt.Fprintf(&b, "Usage: %s\n", usage)
	if len(n.Aliases) > 0 {
		fmt.Fprintf(&b, "Aliases: %s\n", strings.Join(n.Aliases, ", "))
	}
	for _, para := range []string{n.Help, n.Detail} {
		if s := strings.TrimSpace(para); s != "" {
			fmt.Fprintf(&b, "\n%s\n", s)
		}
	}
	if len(n.Positional) > 0 {
		var rows [][2]string
		for _, a := range n.Positional {
			rows = append(rows, [2]string{a.Summary(), valueHelp(a)})
		}
		b.WriteString("\nArguments:\n")
		writeRows(&b, rows)
	}
	global := map[*kong.Flag]bool{}
	for _, f := range app.Flags {
		global[f] = n.Type != kong.ApplicationNode // listed once, under the root
	}
	var rows [][2]string
	for _, level := range n.AllFlags(true) {
		for _, f := range level {
			if !global[f] {
				rows = append(rows, [2]string{f.String(), valueHelp(f.Value)})
			}
		}
	}
	if len(rows) > 0 {
		b.WriteString("\nFlags:\n")
		writeRows(&b, rows)
	}
	rows = rows[:0]
	for _, c := range n.Children {
		if !c.Hidden {
			rows = append(rows, [2]string{strings.TrimPrefix(CommandLine(app, c), app.Name+" "), c.Help})
		}
	}
	if len(rows) > 0 {
		b.WriteString("\nCommands:\n")
		writeRows(&b, rows)
	}
	return b.String()
}

// valueHelp is a flag's or argument's help as --help shows it (with its
// environment variables), plus its allowed values when the help does not
// already name them.
func valueHelp(v *kong.Value) string {
	s := kong.DefaultHelpValueFormatter(v)
	if enum := v.EnumSlice(); v.Enum != "" && !mentionsAll(s, enum) {
		s = strings.TrimSpace(s + " One of: " + strings.Join(enum, ", ") + ".")
	}
	return strings.Join(strings.Fields(s), " ")
}

func mentionsAll(s string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// writeRows writes two aligned columns, indented by two spaces.
func writeRows(b *strings.Builder, rows [][2]string) {
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	for _, r := range rows {
		line := fmt.Sprintf("  %-*s    %s", width, r[0], r[1])
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
}

// DefaultDir returns ~/.claude/skills, where Claude Code finds personal
// skills.
func DefaultDir() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("skill: no home directory for the default skills dir: %w", err)
	}
	return filepath.Join(home, ".claude", "skills"), nil
}

// Install writes doc to dir/conclave/SKILL.md and reference to
// dir/conclave/reference.md, creating the directories and replacing any
// earlier version, and returns SKILL.md's path. Each file is written to a
// temporary name and renamed into place, so it is never seen half-written;
// the reference goes first, so SKILL.md never links to a missing file.
func Install(dir, doc, reference string) (path string, err error) {
	if dir == "" {
		return "", errors.New("skill: no skills directory given")
	}
	skillDir := filepath.Join(dir, Name)
	if err := os.MkdirAll(skillDir, 0o755); err != nil {
		return "", fmt.Errorf("skill: create %s: %w", skillDir, err)
	}
	if _, err := writeFile(skillDir, ReferenceFileName, reference); err != nil {
		return "", err
	}
	return writeFile(skillDir, FileName, doc)
}

// writeFile replaces skillDir/name with content through a temporary file.
func writeFile(skillDir, name, content string) (string, error) {
	path := filepath.Join(skillDir, name)
	if err := atomicfile.WriteFile(path, []byte(content), 0o644); err != nil {
		return "", fmt.Errorf("skill: write %s: %w", path, err)
	}
	return path, nil
}
