package server

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the package graph pointing down: the server may use
// protocol, eventlog, projections and identity, never the client side.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Deps "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{"protocol": true, "eventlog": true, "projections": true, "identity": true, "web": true}
	for _, dep := range strings.Fields(string(out)) {
		name, ok := strings.CutPrefix(dep, "github.com/conclave/conclave/")
		if ok && !allowed[name] {
			t.Errorf("server imports %s; it may import only protocol, eventlog, projections, identity and web (the embedded page)", dep)
		}
	}
}
