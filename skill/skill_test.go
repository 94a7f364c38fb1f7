package skill

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// testCLI is a small command tree with every shape the reference must
// handle: nested commands, aliases, a hidden command, a default
// subcommand, enums, environment variables and required flags.
type testCLI struct {
	Config string `name:"config-dir" placeholder:"DIR" help:"Config dir."`
	Debug  bool   `short:"v" help:"Log more."`

	Serve struct {
		Bind string `default:"0.0.0.0:4390" env:"T_BIND" help:"Address to listen on."`
	} `cmd:"" help:"Run the server."`
	Channel struct {
		Server string `placeholder:"URL" help:"The server."`
		Create struct {
			Name       string `arg:"" help:"The channel's name."`
			Visibility string `enum:"public,private" default:"public" help:"Who may join."`
		} `cmd:"" help:"Create a channel."`
		List struct{} `cmd:"" aliases:"ls" help:"List channels."`
	} `cmd:"" help:"Manage channels."`
	Send struct {
		Channel string `required:"" placeholder:"CHANNEL" help:"The channel."`
		Text    string `arg:"" help:"The message."`
	} `cmd:"" help:"Post a message."`
	Skill struct {
		Show    struct{} `cmd:"" default:"1" help:"Print it."`
		Install struct{} `cmd:"" help:"Install it."`
	} `cmd:"" help:"The skill."`
	Secret struct{} `cmd:"" hidden:"" help:"Not for users."`
}

func testApp(t *testing.T) *kong.Application {
	t.Helper()
	var cli testCLI
	k, err := kong.New(&cli, kong.Name("conclave"), kong.Description("Chat for agents."))
	if err != nil {
		t.Fatal(err)
	}
	return k.Model
}

func TestDocumentPinnedContent(t *testing.T) {
	doc := Document(testApp(t))
	if !strings.HasPrefix(doc, "---\n") {
		t.Errorf("document starts with %q, want front matter", doc[:min(20, len(doc))])
	}
	for _, want := range []string{
		"\nname: conclave\n",
		"join_channel",
		"/join",
		"perm",
		"--as",
		"nix profile install",
		"conclave register",
		"conclave perm set",
		"\nclaude mcp add --scope local conclave -- conclave bridge\n",
		"claude --dangerously-load-development-channels server:conclave",
		"conclave audit --data-dir",
		"conclave audit verify",
		"\n## Command reference\n\n",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("document lacks %q", want)
		}
	}
	for _, bad := range []string{"mcp add --scope user conclave", "cargo install"} {
		if strings.Contains(doc, bad) {
			t.Errorf("document contains %q", bad)
		}
	}
}

func TestDocumentSectionsInOrder(t *testing.T) {
	doc := Document(testApp(t))
	var got []string
	inFence := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
		}
		if !inFence && (strings.HasPrefix(line, "# ") || strings.HasPrefix(line, "## ")) {
			got = append(got, line)
		}
	}
	want := []string{
		"# Conclave",
		"## Mental model",
		"## First-time setup (zero to first message)",
		"## Two surfaces — use the right one",
		"## Examples",
		"## Command reference",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("top-level sections:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if inFence {
		t.Error("a code fence is never closed")
	}
}

// TestFrontMatter checks the YAML front matter without a YAML library: two
// keys, and a description that is one double-quoted scalar with trigger
// phrases and nothing that would end it early.
func TestFrontMatter(t *testing.T) {
	doc := Document(testApp(t))
	end := strings.Index(doc[4:], "\n---\n")
	if end < 0 {
		t.Fatal("front matter is not closed by a --- line")
	}
	lines := strings.Split(doc[4:4+end], "\n")
	keys := map[string]string{}
	for _, l := range lines {
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			t.Fatalf("front matter line %q is not `key: value`", l)
		}
		keys[k] = v
	}
	if keys["name"] != "conclave" || len(keys) != 2 {
		t.Errorf("front matter keys %v, want name: conclave and description", keys)
	}
	d := keys["description"]
	if len(d) < 2 || d[0] != '"' || d[len(d)-1] != '"' || strings.ContainsAny(d[1:len(d)-1], `"\`) {
		t.Errorf("description is not one plain double-quoted scalar: %s", d)
	}
	for _, phrase := range []string{"/join", "/conclave", "join a channel", "whisper", "who is online", "register on the server"} {
		if !strings.Contains(d, phrase) {
			t.Errorf("description lacks trigger phrase %q", phrase)
		}
	}
}

func TestReferenceHasEveryVisibleCommand(t *testing.T) {
	app := testApp(t)
	ref := Reference(app)
	heading := regexp.MustCompile("(?m)^### `([^`]*)`$")
	var got []string
	for _, m := range heading.FindAllStringSubmatch(ref, -1) {
		got = append(got, m[1])
	}
	want := []string{
		"conclave",
		"conclave serve",
		"conclave channel",
		"conclave channel create",
		"conclave channel list",
		"conclave send",
		"conclave skill",
		"conclave skill show",
		"conclave skill install",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("headings %q, want %q", got, want)
	}
	if strings.Contains(ref, "secret") || strings.Contains(ref, "Not for users") {
		t.Error("the hidden command is in the reference")
	}
}

func TestReferenceHelpBlocks(t *testing.T) {
	ref := Reference(testApp(t))
	section := func(name string) string {
		t.Helper()
		_, after, ok := strings.Cut(ref, "### `"+name+"`\n\n```text\n")
		if !ok {
			t.Fatalf("no section for %s", name)
		}
		block, _, ok := strings.Cut(after, "```\n")
		if !ok {
			t.Fatalf("section %s is not closed", name)
		}
		return block
	}
	tests := []struct {
		name    string
		command string
		want    []string
		notWant []string
	}{
		{"root lists globals and commands", "conclave",
			[]string{"Usage: conclave <command> [flags]", "Chat for agents.", "--config-dir=DIR", "-v, --debug", "Commands:\n", "  channel    Manage channels."},
			[]string{"Secret", "secret"}},
		{"parent lists its subcommands", "conclave channel",
			[]string{"Usage: conclave channel <command> [flags]", "--server=URL", "  channel create    Create a channel.", "  channel list      List channels."},
			nil},
		{"env and default shown", "conclave serve",
			[]string{"Usage: conclave serve [flags]", `--bind="0.0.0.0:4390"`, "($T_BIND)"},
			[]string{"--config-dir"}},
		{"parent flags and enum", "conclave channel create",
			[]string{"Usage: conclave channel create <name> [flags]", "Arguments:\n  <name>", "--server=URL", "One of: public, private."},
			[]string{"--config-dir", "--help"}},
		{"alias named, not in usage", "conclave channel list",
			[]string{"Usage: conclave channel list [flags]", "Aliases: ls"},
			[]string{"(ls)"}},
		{"required flag in usage", "conclave send",
			[]string{"Usage: conclave send --channel=CHANNEL <text>"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			block := section(tt.command)
			for _, w := range tt.want {
				if !strings.Contains(block, w) {
					t.Errorf("section %s lacks %q:\n%s", tt.command, w, block)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(block, w) {
					t.Errorf("section %s contains %q:\n%s", tt.command, w, block)
				}
			}
			for _, line := range strings.Split(block, "\n") {
				if line != strings.TrimRight(line, " ") {
					t.Errorf("trailing space in %q", line)
				}
			}
		})
	}
}

// TestDocumentIgnoresTerminalWidth: the reference does not wrap to
// $COLUMNS as kong's help printer does, so every machine renders the same
// document.
func TestDocumentIgnoresTerminalWidth(t *testing.T) {
	app := testApp(t)
	t.Setenv("COLUMNS", "200")
	wide := Document(app)
	t.Setenv("COLUMNS", "30")
	if narrow := Document(app); narrow != wide {
		t.Error("the document changes with $COLUMNS")
	}
}

func TestInstall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "skills") // does not exist yet
	for _, doc := range []string{"first version\n", "second version\n"} {
		path, err := Install(dir, doc, "ref: "+doc)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(dir, "conclave", "SKILL.md"); path != want {
			t.Errorf("path %s, want %s", path, want)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != doc {
			t.Errorf("file holds %q, want %q", got, doc)
		}
		if ref, err := os.ReadFile(filepath.Join(dir, "conclave", "reference.md")); err != nil || string(ref) != "ref: "+doc {
			t.Errorf("reference.md holds %q (%v), want %q", ref, err, "ref: "+doc)
		}
	}
	entries, err := os.ReadDir(filepath.Join(dir, "conclave"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("skill dir holds %d entries, want only SKILL.md and reference.md (no temp files)", len(entries))
	}
}

func TestInstallErrors(t *testing.T) {
	if _, err := Install("", "x", "y"); err == nil {
		t.Error("Install with no dir succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(file, "x", "y"); err == nil || !strings.Contains(err.Error(), "skill: create") {
		t.Errorf("Install under a file: err %v, want a create error", err)
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("HOME", "/home/someone")
	dir, err := DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	if want := "/home/someone/.claude/skills"; dir != want {
		t.Errorf("DefaultDir() = %s, want %s", dir, want)
	}
}
