package control

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps control a client: of this module it may import only
// protocol (the wire) and identity (keys and config). Reaching into the
// server's packages would let the client depend on server internals.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/conclave/conclave/protocol": true,
		"github.com/conclave/conclave/identity": true,
	}
	out, err := exec.Command("go", "list", "-f", `{{join .Deps "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/conclave/conclave/") && !allowed[dep] {
			t.Errorf("control imports %s; it may import only protocol and identity of this module", dep)
		}
	}
}
