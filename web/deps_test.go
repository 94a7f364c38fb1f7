package web

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the web client a leaf: the standard library only, so
// that the server may embed it without pulling anything in.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		if strings.Contains(imp, ".") {
			t.Errorf("web imports %s; it may import the standard library only", imp)
		}
	}
}
