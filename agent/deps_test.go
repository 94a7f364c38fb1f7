package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps agent a leaf: it edits local files and imports only
// atomicfile of this module, and nothing outside the standard library.
func TestDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/conclave/conclave/agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg != "github.com/conclave/conclave/agent" && pkg != "github.com/conclave/conclave/atomicfile" {
			t.Errorf("agent imports %s: it may use atomicfile and the standard library only", pkg)
		}
	}
}
