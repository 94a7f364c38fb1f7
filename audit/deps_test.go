package audit

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the import arrows pointing down (SPEC.md §1): audit reads
// a data dir by itself, so of this module it may import only protocol,
// eventlog and projections — never server (which writes data dirs and
// takes their lock), control, identity or bridge.
func TestDeps(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	const module = "github.com/conclave/conclave/"
	allowed := map[string]string{
		module + "protocol":    "names and visibilities",
		module + "eventlog":    "the read-only Reader and snapshot files",
		module + "projections": "event types and replay",
	}
	out, err := exec.Command(gobin, "list", "-f", `{{join .Deps "\n"}}`, module+"audit").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, module) {
			if _, ok := allowed[dep]; !ok {
				t.Errorf("audit imports %s; of this module it may import only %v", dep, allowed)
			}
		}
	}
}
