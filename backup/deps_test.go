package backup

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps backup where SPEC.md §1 puts it: it reads data dirs
// through protocol, eventlog and projections only (never the server, which
// would make a backup depend on a running process), and adds no third-
// party code beyond zstd.
func TestDeps(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	const module = "github.com/conclave/conclave/"
	out, err := exec.Command(gobin, "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]string{
		module + "protocol":                  "names and wire types",
		module + "eventlog":                  "the record and segment formats, snapshots",
		module + "projections":               "loading snapshots and replaying events to verify them",
		"github.com/klauspost/compress/zstd": "the archive's compression",
	}
	for _, imp := range strings.Fields(string(out)) {
		if _, ok := allowed[imp]; ok {
			continue
		}
		if first, _, _ := strings.Cut(imp, "/"); !strings.Contains(first, ".") {
			continue // standard library
		}
		t.Errorf("backup imports %s; allowed beyond the standard library: %v", imp, allowed)
	}
	// Nothing of this module may come in indirectly either.
	out, err = exec.Command(gobin, "list", "-f", `{{join .Deps "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if name, ok := strings.CutPrefix(dep, module); ok && allowed[dep] == "" {
			t.Errorf("backup depends on %s", name)
		}
	}
}
