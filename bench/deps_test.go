package bench

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the package graph pointing down: bench may use the
// server, the client, protocol and identity (SPEC §1).
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Deps "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{"server": true, "control": true, "protocol": true, "identity": true,
		"eventlog": true, "projections": true} // the last two come with server
	for _, dep := range strings.Fields(string(out)) {
		name, ok := strings.CutPrefix(dep, "github.com/conclave/conclave/")
		if ok && !allowed[name] {
			t.Errorf("bench imports %s; it may import only server, control, protocol and identity", dep)
		}
	}
}
