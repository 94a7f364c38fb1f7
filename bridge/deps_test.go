package bridge

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the bridge a client (SPEC.md §1): of this module it may
// import only protocol, identity and control, and from outside the
// standard library only mcp-go and what those packages bring along.
func TestDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	const self = "github.com/conclave/conclave/bridge"
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", self).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowedOurs := map[string]bool{
		self:                                    true,
		"github.com/conclave/conclave/protocol": true, // wire frames and names
		"github.com/conclave/conclave/identity": true, // key, config.toml, levels
		"github.com/conclave/conclave/control":  true, // the authenticated client connection
	}
	reasons := map[string]string{
		"eventlog":     "the server's storage: a client must not touch it",
		"projections":  "server-side state: the bridge learns everything over the wire",
		"server":       "the bridge talks to a server over the wire, never in-process",
		"audit":        "reads data dirs, a server-side concern",
		"bench":        "a load generator above the bridge",
		"cmd/conclave": "wiring only",
	}
	// Direct third-party imports the bridge may make; their own
	// dependencies (and those of control and identity) come along.
	direct := map[string]bool{
		"github.com/mark3labs/mcp-go/mcp":    true,
		"github.com/mark3labs/mcp-go/server": true,
	}
	for _, pkg := range strings.Fields(string(out)) {
		if ours, ok := strings.CutPrefix(pkg, "github.com/conclave/conclave/"); ok {
			if !allowedOurs[pkg] {
				why := reasons[ours]
				if why == "" {
					why = "the bridge may import only protocol, identity and control of this module"
				}
				t.Errorf("bridge imports %s: %s", pkg, why)
			}
		}
	}
	imports, err := exec.Command(goTool, "list", "-f", `{{join .Imports "\n"}}`, self).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, imports)
	}
	for _, pkg := range strings.Fields(string(imports)) {
		if !strings.Contains(strings.Split(pkg, "/")[0], ".") {
			continue // standard library
		}
		if !allowedOurs[pkg] && !direct[pkg] {
			t.Errorf("bridge imports %s directly; allowed: protocol, identity, control and mcp-go", pkg)
		}
	}
}
