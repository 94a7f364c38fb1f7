package server

// Hostile cases about names: lookalike and invisible names where a name is
// created (register, user_add, machine_add, an enrollment link,
// create_channel, rename_channel, the session handle in hello), names
// confusable with existing ones, and a data dir written before the name
// profile, whose names keep working. The attack runs in TestHostileClients.

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/conclave/conclave/datadir"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/protocol"
)

// lookalikes are the names issue 12 registered before the name profile,
// each able to pass for "alice" (or "alice/laptop") to a reader.
var lookalikes = []struct{ what, name string }{
	{"Cyrillic a", "\u0430lice"},
	{"uppercase", "Alice"},
	{"full-width", "ａｌｉｃｅ"},
	{"division slash", "alice∕laptop"},
	{"zero-width space", "alice\u200b"},
	{"right-to-left override", "\u202eecila"},
	{"soft hyphen", "ali\u00adce"},
	{"byte order mark", "\ufeffalice"},
}

// profileRule is the part of every profile refusal that names the rule.
const profileRule = "a new name uses only lowercase letters a-z, digits 0-9, '-', '_' and '.'"

func attackLookalikeNames(t *testing.T, h *hostile) {
	before := lastSeq(h.env.srv)
	for _, l := range lookalikes {
		_, f := h.env.handshake(newKey(t), "s", &protocol.Frame{Username: l.name, Machine: "m"})
		wantErr(t, "register user "+l.what, f, protocol.CodeMalformed, "invalid user name")
		wantErr(t, "register user "+l.what, f, protocol.CodeMalformed, profileRule)

		_, f = h.env.handshake(newKey(t), "s", &protocol.Frame{Username: "bob", Machine: l.name})
		wantErr(t, "register machine "+l.what, f, protocol.CodeMalformed, "invalid machine name")

		f = h.root.req(&protocol.Frame{Type: protocol.TUserAdd, User: l.name, Machine: "m", Pubkey: pubOf(newKey(t))})
		wantErr(t, "user_add "+l.what, f, protocol.CodeMalformed, profileRule)

		f = h.mallory.req(&protocol.Frame{Type: protocol.TMachineAdd, Machine: l.name, Pubkey: pubOf(newKey(t))})
		wantErr(t, "machine_add "+l.what, f, protocol.CodeMalformed, "invalid machine name")

		f = h.mallory.req(&protocol.Frame{Type: protocol.TEnrollLink, Machine: l.name})
		wantErr(t, "enroll_link "+l.what, f, protocol.CodeMalformed, "invalid machine name")

		f = h.mallory.req(&protocol.Frame{Type: protocol.TCreateChannel, Channel: l.name})
		wantErr(t, "create_channel "+l.what, f, protocol.CodeMalformed, "invalid channel name")

		f = h.alice.req(&protocol.Frame{Type: protocol.TRenameChannel, Channel: "ops", NewName: l.name})
		wantErr(t, "rename_channel "+l.what, f, protocol.CodeMalformed, "invalid channel name")

		f = h.helloOnly(t, l.name)
		wantErr(t, "hello handle "+l.what, f, protocol.CodeMalformed, "invalid session handle")
	}

	// Names inside the profile that read as an existing one.
	_, f := h.env.handshake(newKey(t), "s", &protocol.Frame{Username: "a1ice", Machine: "m"})
	wantErr(t, "register a1ice", f, protocol.CodeConflict, `username "a1ice" is confusable with the existing user "alice"`)
	_, f = h.env.handshake(newKey(t), "s", &protocol.Frame{Username: "ma11ory", Machine: "m"})
	wantErr(t, "register ma11ory", f, protocol.CodeConflict, `confusable with the existing user "mallory"`)
	f = h.mallory.req(&protocol.Frame{Type: protocol.TMachineAdd, Machine: "evi1", Pubkey: pubOf(newKey(t))})
	wantErr(t, "machine_add evi1", f, protocol.CodeConflict, `machine name "evi1" is confusable with your machine "evil"`)
	f = h.mallory.req(&protocol.Frame{Type: protocol.TEnrollLink, Machine: "evi1"})
	wantErr(t, "enroll_link evi1", f, protocol.CodeConflict, "confusable")
	h.mallory.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "my-proj"})
	for _, name := range []string{"0ps", "my_proj", "my.proj", "rny-proj"} {
		f = h.mallory.req(&protocol.Frame{Type: protocol.TCreateChannel, Channel: name})
		wantErr(t, "create_channel "+name, f, protocol.CodeConflict, "is confusable with an existing channel's")
	}
	h.mallory.ok(&protocol.Frame{Type: protocol.TDeleteChannel, Channel: "my-proj"})
	// A private channel is not named in the refusal.
	f = h.mallory.req(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "secre_t"})
	if f.Type != protocol.TAck {
		// "secre_t" reads as "secre-t", not "secret": it is allowed.
		t.Fatalf("create_channel secre_t: %+v", f)
	}
	f = h.mallory.req(&protocol.Frame{Type: protocol.TRenameChannel, Channel: "secre_t", NewName: "0ps"})
	wantErr(t, "rename_channel to 0ps", f, protocol.CodeConflict, "is confusable with an existing channel's")
	// Renaming a channel to a lookalike of its own name is no impersonation.
	h.mallory.ok(&protocol.Frame{Type: protocol.TRenameChannel, Channel: "secre_t", NewName: "secre-t"})
	h.mallory.ok(&protocol.Frame{Type: protocol.TDeleteChannel, Channel: "secre-t"})

	// Nothing else was written: the only events are mallory's channels.
	if got, want := lastSeq(h.env.srv), before+5; got != want {
		t.Errorf("last seq %d after the attack, want %d (create, delete, create, rename, delete)", got, want)
	}
	users := h.root.ok(&protocol.Frame{Type: protocol.TListUsers}).Users
	slices.Sort(users)
	if !slices.Equal(users, []string{"alice", "carol", "mallory", "root"}) {
		t.Fatalf("users = %v", users)
	}
	if n := len(h.env.srv.state.Machines("mallory")); n != 1 {
		t.Errorf("mallory has %d machines, want 1", n)
	}
}

// helloOnly sends a hello with session handle handle and returns the
// server's answer (a challenge, or an error before the connection closes).
func (h *hostile) helloOnly(t *testing.T, handle string) *protocol.Frame {
	t.Helper()
	c := h.env.dialRaw()
	c.sendFrame(&protocol.Frame{Type: protocol.THello, Version: protocol.Version, Session: handle})
	f := c.next()
	c.conn.CloseNow()
	return f
}

// TestOldStyleNamesKeepWorking starts a server on a data dir written before
// the name profile, whose log holds a user "Zoë Ω", a machine "Büro PC"
// and a channel "Général" beside a lowercase "alice": the server starts,
// the old names log in, post, join, are whispered to and administered,
// and a new name confusable with an old one is refused.
func TestOldStyleNamesKeepWorking(t *testing.T) {
	dir := t.TempDir()
	zoe, alice := newKey(t), newKey(t)
	writeOldLog(t, dir, []eventlog.Entry{
		oldEvent(t, projections.EvUserRegistered, projections.RegisterData{User: "Zoë Ω", Machine: "Büro PC", Pubkey: pubOf(zoe)}),
		oldEvent(t, projections.EvUserRegistered, projections.RegisterData{User: "Alice", Machine: "laptop", Pubkey: pubOf(alice)}),
		oldEvent(t, projections.EvChannelCreated, projections.ChannelData{Channel: "Général", Visibility: protocol.Public, CreatedBy: "Zoë Ω"}),
	})
	env := newTestEnv(t, Config{DataDir: dir})

	z := env.login(zoe, "main")
	if z.path != "Zoë Ω/Büro PC/main" {
		t.Fatalf("old user's path %q", z.path)
	}
	a := env.login(alice, "s")
	z.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "Général"})
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "Général"})
	z.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "Général", Body: body("bonjour")})
	if d := a.nextOfType(protocol.TChannelMsg); d.From != "Zoë Ω/Büro PC/main" || *d.Body != "bonjour" {
		t.Fatalf("delivery %+v", d)
	}
	a.ok(&protocol.Frame{Type: protocol.TWhisper, Target: "Zoë Ω/Büro PC/main", Body: body("psst")})
	if w := z.nextOfType(protocol.TWhisper); *w.Body != "psst" || w.From != "Alice/laptop/s" {
		t.Fatalf("whisper %+v", w)
	}
	z.ok(&protocol.Frame{Type: protocol.TACLAdd, Channel: "Général", User: "Alice"})
	z.ok(&protocol.Frame{Type: protocol.TRenameChannel, Channel: "Général", NewName: "general"})
	z.ok(&protocol.Frame{Type: protocol.TMachineAdd, Machine: "phone", Pubkey: pubOf(newKey(t))})

	// "alice" and "ALICE" read as the old "Alice".
	_, f := env.handshake(newKey(t), "s", &protocol.Frame{Username: "alice", Machine: "m"})
	wantErr(t, "register alice beside Alice", f, protocol.CodeConflict, `username "alice" is confusable with the existing user "Alice"`)
	f = z.req(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "g\u00e9n\u00e9ral"})
	wantErr(t, "create an old-style channel", f, protocol.CodeMalformed, profileRule)

	// And it all survives a restart (replay of the old and new names).
	env.close()
	env = newTestEnv(t, Config{DataDir: dir})
	z = env.login(zoe, "main")
	z.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "general"})
	z.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "general", Body: body("encore")})
}

// writeOldLog creates a data dir at dir whose event log holds entries, as
// a server before the name profile could have written them.
func writeOldLog(t *testing.T, dir string, entries []eventlog.Entry) {
	t.Helper()
	d, err := datadir.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	l, err := eventlog.Open(d.Events(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(entries); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func oldEvent(t *testing.T, typ string, data any) eventlog.Entry {
	t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return eventlog.Entry{TimeMs: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), Actor: "server", Type: typ, Data: b}
}
