package eventlog

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps eventlog at the bottom of the import graph (SPEC.md §1):
// it stores opaque records and must not know about users, channels or the
// wire, so it imports nothing else from this module.
func TestDeps(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	const self = "github.com/conclave/conclave/eventlog"
	out, err := exec.Command(gobin, "list", "-f", `{{join .Deps "\n"}}`, self).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	// Third-party code allowed, with the reason.
	allowed := map[string]string{
		"github.com/tidwall/":           "tidwall/wal and its dependencies: the segment store",
		"github.com/klauspost/compress": "zstd for snapshots",
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/conclave/conclave") {
			t.Errorf("eventlog imports %s: it is the lowest package of the module and may import none of it", dep)
			continue
		}
		if first, _, _ := strings.Cut(dep, "/"); !strings.Contains(first, ".") {
			continue // standard library
		}
		ok := false
		for prefix := range allowed {
			ok = ok || strings.HasPrefix(dep, prefix)
		}
		if !ok {
			t.Errorf("eventlog imports %s; allowed outside the standard library: %v", dep, allowed)
		}
	}
}
