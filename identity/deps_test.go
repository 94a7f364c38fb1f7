package identity

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps identity's imports pointing down (SPEC.md §1): of this
// module it may import only protocol, and from outside the standard
// library only x/crypto (the OpenSSH key formats) and BurntSushi/toml.
func TestDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	const self = "github.com/conclave/conclave/identity"
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", self).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowedOurs := map[string]bool{
		self:                                    true,
		"github.com/conclave/conclave/protocol": true, // names and wire types
	}
	// Why everything else of ours is out: they all sit above identity.
	reasons := map[string]string{
		"eventlog":     "the server's storage; a client config has no business with it",
		"projections":  "server-side state",
		"server":       "the server imports identity, not the other way round",
		"control":      "a client of identity",
		"bridge":       "a client of identity",
		"cmd/conclave": "wiring only",
	}
	allowedOther := []string{"golang.org/x/crypto/", "github.com/BurntSushi/toml"}
	for _, pkg := range strings.Fields(string(out)) {
		if ours, ok := strings.CutPrefix(pkg, "github.com/conclave/conclave/"); ok || pkg == "github.com/conclave/conclave" {
			if !allowedOurs[pkg] {
				why := reasons[ours]
				if why == "" {
					why = "identity may import only protocol of this module"
				}
				t.Errorf("identity imports %s: %s", pkg, why)
			}
			continue
		}
		ok := false
		for _, prefix := range allowedOther {
			if strings.HasPrefix(pkg, prefix) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("identity imports %s, which is neither the standard library, x/crypto nor BurntSushi/toml", pkg)
		}
	}
}
