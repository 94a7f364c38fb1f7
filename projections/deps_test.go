package projections

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the import arrows pointing down (STYLE.md §1):
// projections may use the standard library, protocol (names, errors) and
// eventlog (records), and nothing else of this module — above all not
// server, control or bridge.
func TestImports(t *testing.T) {
	const module = "github.com/conclave/conclave/"
	allowed := map[string]bool{
		module + "protocol": true,
		module + "eventlog": true,
	}
	out, err := exec.Command("go", "list", "-f", `{{join .Deps "\n"}}`, module+"projections").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, module) && !allowed[dep] {
			t.Errorf("projections imports %s; it may import only protocol and eventlog of this module", dep)
		}
		if !strings.HasPrefix(dep, module) && strings.Contains(strings.SplitN(dep, "/", 2)[0], ".") {
			t.Errorf("projections imports %s; it may use only the standard library outside this module", dep)
		}
	}
}
