package skill

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps skill a leaf: it imports no package of this module.
// cmd/conclave hands it the kong model; if skill reached into the CLI's
// packages, the reference could no longer be tested on a tree of its own.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Deps "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/conclave/conclave/") {
			t.Errorf("skill imports %s; it may import no package of this module", dep)
		}
	}
}
