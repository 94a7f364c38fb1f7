package main

import (
	"strings"
	"testing"
)

// TestClosedRegistrationAndUserAdd: on a server with --registration
// closed only the pinned admin registers; the admin adds bob, whose
// machine records the registration with register --existing; a second
// machine enrolled with machine add does the same.
func TestClosedRegistrationAndUserAdd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	addr := freeAddr(t)
	url := "ws://" + addr
	admin, bob, laptop, eve := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	adminKey := strings.TrimSpace(ok(t, nil, "--config-dir", admin, "key"))
	serveDir(t, addr, t.TempDir(), "--registration", "closed", "--admin", "root="+adminKey)

	fails(t, 1, "registration is closed", nil, "--config-dir", eve, "register", "eve", "--server", url)
	ok(t, nil, "--config-dir", admin, "register", "root", "--server", url)
	bobKey := strings.TrimSpace(ok(t, nil, "--config-dir", bob, "key"))
	out := ok(t, nil, "--config-dir", admin, "user", "add", "bob", "--machine", "desk", "--pubkey", bobKey)
	if !strings.Contains(out, "register --existing") {
		t.Errorf("user add output %q does not say how bob finishes", out)
	}
	fails(t, 1, "enrolled as bob", nil, "--config-dir", bob, "register", "robert", "--existing", "--server", url)
	if got := ok(t, nil, "--config-dir", bob, "register", "--existing", "--server", url); !strings.Contains(got, "bob/desk/") {
		t.Fatalf("register --existing = %q", got)
	}
	fails(t, 1, "server admin", nil, "--config-dir", bob, "user", "add", "x", "--machine", "m", "--pubkey", bobKey, "--server", url)
	ok(t, nil, "--config-dir", bob, "channel", "create", "bobs")
	lapKey := strings.TrimSpace(ok(t, nil, "--config-dir", laptop, "key"))
	ok(t, nil, "--config-dir", bob, "machine", "add", "laptop", "--pubkey", lapKey)
	ok(t, nil, "--config-dir", laptop, "register", "bob", "--existing", "--server", url)
	if got := ok(t, nil, "--config-dir", laptop, "server", "list"); !strings.Contains(got, "bob/laptop") {
		t.Fatalf("laptop's server list = %q", got)
	}
	if got := ok(t, nil, "--config-dir", laptop, "channel", "list"); !strings.Contains(got, "bobs") {
		t.Fatalf("laptop's channel list = %q", got)
	}
}
