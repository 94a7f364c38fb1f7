package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// model builds the CLI's kong model in-process, as run does, so tests can
// walk the same tree the binary walks.
func model(t *testing.T) *kong.Application {
	t.Helper()
	var cli CLI
	k, err := kong.New(&cli, kong.Name("conclave"), kong.Vars{"version": "conclave test"})
	if err != nil {
		t.Fatal(err)
	}
	return k.Model
}

// visibleCommands lists every command below n that is not hidden, as
// typed ("channel create"), depth first.
func visibleCommands(n *kong.Node, prefix string) []string {
	var out []string
	for _, c := range n.Children {
		if c.Hidden || c.Type != kong.CommandNode {
			continue
		}
		path := strings.TrimSpace(prefix + " " + c.Name)
		out = append(out, path)
		out = append(out, visibleCommands(c, path)...)
	}
	return out
}

func TestSkillShow(t *testing.T) {
	doc := ok(t, nil, "skill")
	if show := ok(t, nil, "skill", "show"); show != doc {
		t.Error("`conclave skill` and `conclave skill show` differ")
	}
	if !strings.HasPrefix(doc, "---\nname: conclave\n") {
		t.Errorf("skill starts with %q, want front matter naming conclave", doc[:min(len(doc), 40)])
	}
	for _, want := range []string{
		"join_channel", "/join", "perm", "--as", "nix profile install",
		"conclave register", "conclave perm set",
		"claude mcp add --scope local conclave -- conclave bridge\n",
		"claude --dangerously-load-development-channels server:conclave",
		"conclave audit --data-dir",
		"\n## Command reference\n",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("skill lacks %q", want)
		}
	}
	if strings.Contains(doc, "mcp add --scope user conclave") {
		t.Error("skill recommends the user-scope MCP registration")
	}
	if got := ok(t, nil, "--json", "skill"); got != doc {
		t.Error("--json changes the skill document")
	}
	// The Agent Skills guidance: a body under 500 lines that points to
	// its references.
	if n := strings.Count(doc, "\n"); n >= 500 {
		t.Errorf("SKILL.md has %d lines, want under 500", n)
	}
	if !strings.Contains(doc, "[reference.md](reference.md)") {
		t.Error("SKILL.md does not link reference.md")
	}
	if strings.Contains(doc, "\n### `conclave") {
		t.Error("SKILL.md still carries the generated reference")
	}
}

// TestSkillReferenceCoversEveryCommand walks the kong model and checks
// that every visible command, whichever verbs exist today, has exactly one
// heading in the reference, in the model's order, and that its section
// names every flag and argument the command has.
func TestSkillReferenceCoversEveryCommand(t *testing.T) {
	doc := ok(t, nil, "skill", "reference")
	if !strings.HasPrefix(doc, "# `conclave` command reference\n") {
		t.Errorf("reference.md starts with %q", doc[:min(len(doc), 60)])
	}
	_, ref, found := strings.Cut(doc, "\n## Command reference\n")
	if !found {
		t.Fatal("no command reference")
	}
	app := model(t)
	want := []string{"conclave"}
	for _, c := range visibleCommands(app.Node, "") {
		want = append(want, "conclave "+c)
	}
	var got []string
	for _, m := range regexp.MustCompile("(?m)^### `(conclave[^`]*)`$").FindAllStringSubmatch(ref, -1) {
		got = append(got, m[1])
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("reference headings:\n%s\nwant one per command of the model:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, need := range []string{"conclave skill install", "conclave completions", "conclave perm set"} {
		if !slices.Contains(got, need) {
			t.Errorf("no heading for %s", need)
		}
	}

	sections := map[string]string{}
	parts := regexp.MustCompile("(?m)^### `").Split(ref, -1)
	for _, p := range parts[1:] {
		name, body, _ := strings.Cut(p, "`")
		sections[name] = body
	}
	var check func(n *kong.Node, path string)
	check = func(n *kong.Node, path string) {
		sec := sections[path]
		for _, f := range n.Flags {
			if !f.Hidden && !strings.Contains(sec, "--"+f.Name) {
				t.Errorf("section %s does not document --%s", path, f.Name)
			}
		}
		for _, a := range n.Positional {
			if !strings.Contains(sec, "<"+a.Name+">") {
				t.Errorf("section %s does not document <%s>", path, a.Name)
			}
		}
		for _, c := range n.Children {
			if !c.Hidden && c.Type == kong.CommandNode {
				check(c, path+" "+c.Name)
			}
		}
	}
	check(app.Node, "conclave")
}

func TestSkillInstall(t *testing.T) {
	doc := ok(t, nil, "skill")
	dir := filepath.Join(t.TempDir(), "skills")
	path := filepath.Join(dir, "conclave", "SKILL.md")
	for range 2 { // a second install replaces the first
		if got, want := ok(t, nil, "skill", "install", "--dir", dir), "✓ installed the conclave skill to "+path+"\n"; got != want {
			t.Errorf("skill install printed %q, want %q", got, want)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != doc {
			t.Error("the installed SKILL.md differs from `conclave skill`")
		}
		ref, err := os.ReadFile(filepath.Join(dir, "conclave", "reference.md"))
		if err != nil || string(ref) != ok(t, nil, "skill", "reference") {
			t.Errorf("the installed reference.md differs from `conclave skill reference` (%v)", err)
		}
	}
	if got := ok(t, nil, "--json", "skill", "install", "--dir", dir); got != `{"path":"`+path+`"}`+"\n" {
		t.Errorf("skill install --json printed %q", got)
	}

	home := t.TempDir()
	ok(t, []string{"HOME=" + home}, "skill", "install")
	if _, err := os.Stat(filepath.Join(home, ".claude", "skills", "conclave", "SKILL.md")); err != nil {
		t.Errorf("skill install without --dir: %v", err)
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fails(t, 1, "skill: create", nil, "skill", "install", "--dir", file)
}
