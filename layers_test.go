package conclave_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/conclave/conclave/"

// layers is the package graph of SPEC.md §1, lowest floor first: each
// package with its job, the packages of this module it may import (all on
// rows above it: no import runs up, so there is no cycle) and the
// third-party import paths (prefixes) it may import directly. What those
// bring along is theirs. A package missing here fails the test: give it a
// row where it belongs.
var layers = []struct {
	pkg   string
	job   string
	ours  []string
	other []string
}{
	{"protocol", "wire frames, validation, names, error codes; no I/O", nil, nil},
	{"atomicfile", "crash-safe file writes and directory fsyncs", nil, nil},
	{"leakcheck", "for tests: fails a test binary whose goroutines outlive its tests", nil, nil},
	{"regfile", "reads of user-given files: regular files only, under a size cap", nil, nil},
	{"timespec", "the two grammars of time: durations and points in time", nil, nil},
	{"orderedjson", "JSON documents whose objects keep their key order", nil, nil},
	{"linediff", "unified diffs of small text files", nil, nil},
	{"agent", "coding-agent client settings that agent setup writes and removes", []string{"atomicfile", "orderedjson", "linediff", "regfile"}, nil},
	{"web", "the browser client's embedded files, served with their security headers", nil, nil},
	{"agentsetup", "Codex CLI and Gemini CLI configuration that agent setup writes and removes", []string{"atomicfile", "orderedjson", "linediff", "regfile"},
		[]string{"github.com/BurntSushi/toml"}},
	{"skill", "the packaged Claude Code skill, fed the kong model by cmd", []string{"atomicfile"},
		[]string{"github.com/alecthomas/kong"}},
	{"eventlog", "the durable log of opaque records, its scanners and snapshot files; knows nothing of chat",
		[]string{"atomicfile"}, []string{"github.com/tidwall/wal", "github.com/klauspost/compress/zstd"}},
	{"identity", "machine key, config dir, config.toml, permission levels",
		[]string{"protocol", "atomicfile", "regfile"}, []string{"golang.org/x/crypto/", "github.com/BurntSushi/toml"}},
	{"projections", "state rebuilt from events; command validation",
		[]string{"protocol", "eventlog"}, nil},
	{"datadir", "the data dir's layout, LOCK and server id; open for writing or read-only",
		[]string{"atomicfile", "regfile"}, nil},
	{"server", "the HTTP and WebSocket endpoint, the only writer of a data dir",
		[]string{"protocol", "eventlog", "projections", "identity", "datadir", "atomicfile", "web"},
		[]string{"github.com/coder/websocket", "golang.org/x/time/rate"}},
	{"control", "the authenticated client: one-shot and persistent",
		[]string{"protocol", "identity"}, []string{"github.com/coder/websocket"}},
	{"bridge", "MCP stdio server, links to servers, local permission policy",
		[]string{"protocol", "identity", "control", "timespec"}, []string{"github.com/mark3labs/mcp-go/"}},
	{"audit", "read-only replay of a data dir",
		[]string{"protocol", "eventlog", "projections", "datadir"}, nil},
	{"backup", "consistent copy of a data dir and its verified restore",
		[]string{"protocol", "eventlog", "projections", "datadir", "atomicfile", "regfile"},
		[]string{"github.com/klauspost/compress/zstd"}},
	{"bench", "load generator, in-process server, bare-WebSocket baseline",
		[]string{"server", "control", "protocol", "identity"}, []string{"github.com/coder/websocket"}},
	{"repair", "offline repair of a damaged data dir: history quarantine, the event-log cut",
		[]string{"atomicfile", "datadir", "eventlog", "projections", "server"}, nil},
	{"cmd/conclave", "the CLI: wiring only",
		[]string{"protocol", "atomicfile", "regfile", "timespec", "agent", "agentsetup", "skill", "eventlog", "identity", "projections", "datadir", "server",
			"control", "bridge", "audit", "backup", "bench", "repair"},
		[]string{"github.com/alecthomas/kong"}},
}

// TestLayers checks every package's direct imports against its row, and
// the rows themselves: a package may import only rows above its own.
func TestLayers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	floor := map[string]int{}
	for i, l := range layers {
		floor[l.pkg] = i
		for _, imp := range l.ours {
			if j, ok := floor[imp]; !ok || j >= i {
				t.Errorf("table: %s may import %s, which is not on a row above it", l.pkg, imp)
			}
		}
	}
	out, err := exec.Command(gobin, "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, ok := strings.CutPrefix(f[0], module)
		if !ok {
			continue // the module root: this test
		}
		i, ok := floor[pkg]
		if !ok {
			t.Errorf("%s has no row in the layers table (SPEC.md §1): add one", pkg)
			continue
		}
		l := layers[i]
		for _, imp := range f[1:] {
			if ours, ok := strings.CutPrefix(imp, module); ok {
				if !slices.Contains(l.ours, ours) {
					t.Errorf("%s imports %s; it may import only %v of this module", pkg, ours, l.ours)
				}
				continue
			}
			if first, _, _ := strings.Cut(imp, "/"); !strings.Contains(first, ".") {
				continue // standard library
			}
			if !slices.ContainsFunc(l.other, func(p string) bool { return strings.HasPrefix(imp, p) }) {
				t.Errorf("%s imports %s; beyond the standard library it may import only %v", pkg, imp, l.other)
			}
		}
	}
}
