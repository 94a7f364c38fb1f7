package protocol

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps protocol at the bottom of the package graph: it may
// import no other package of this module.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Deps "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/conclave/conclave/") {
			t.Errorf("protocol imports %s; it must import no other package of this module", dep)
		}
	}
}
