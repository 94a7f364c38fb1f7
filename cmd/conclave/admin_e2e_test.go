package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sameRefusal checks that two failed runs printed the same error, after
// the name of the second run's channel is replaced by the first's.
func sameRefusal(t *testing.T, what string, a, b result, nameA, nameB string) {
	t.Helper()
	if a.code != 1 || b.code != 1 {
		t.Errorf("%s: exit %d and %d, want 1 and 1 (stderr %q, %q)", what, a.code, b.code, a.stderr, b.stderr)
		return
	}
	if strings.ReplaceAll(b.stderr, nameB, nameA) != a.stderr || !strings.HasPrefix(a.stderr, "error: ") {
		t.Errorf("%s: refusals differ:\n  %q\n  %q", what, a.stderr, b.stderr)
	}
}

// TestAdminVerbs runs channel administration, ACLs, invites, moderation
// and user administration against the real server, with alice as server
// admin.
func TestAdminVerbs(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a server")
	}
	url, _, _ := startServer(t, "--admin", "alice", "--rate-limit", "0")
	tmp := t.TempDir()
	dirs := map[string][]string{}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		dirs[u] = []string{"CONCLAVE_CONFIG_DIR=" + filepath.Join(tmp, u)}
		ok(t, dirs[u], "register", u, "--server", url, "--machine", "m")
	}
	a, b, c, d := dirs["alice"], dirs["bob"], dirs["carol"], dirs["dave"]

	// A private channel, an ACL entry, a single-use invite.
	if out := ok(t, a, "channel", "create", "secret", "--visibility", "private"); out != "✓ created secret (private)\n" {
		t.Errorf("channel create = %q", out)
	}
	if out := ok(t, a, "acl", "add", "dave", "--channel", "secret"); out != "✓ added dave to secret\n" {
		t.Errorf("acl add = %q", out)
	}
	var inv struct {
		Channel   string  `json:"channel"`
		Token     string  `json:"token"`
		Uses      *int    `json:"uses"`
		ExpiresAt *string `json:"expires_at"`
	}
	out := ok(t, a, "invite", "create", "--channel", "secret", "--uses", "1", "--json")
	if err := json.Unmarshal([]byte(out), &inv); err != nil || inv.Channel != "secret" || len(inv.Token) != 32 ||
		inv.Uses == nil || *inv.Uses != 1 || inv.ExpiresAt != nil || !strings.Contains(out, `"expires_at":null`) {
		t.Fatalf("invite create --json = %q (%v)", out, err)
	}
	t1 := inv.Token

	// bob redeems it (and sets a level); carol cannot: the token is spent,
	// and her refusal is the one for a channel that does not exist.
	if out := ok(t, b, "join", "secret", "--token", t1, "--perm", "converse"); out != "✓ joined secret\n✓ permission for "+url+" secret -> converse\n" {
		t.Errorf("join --token = %q", out)
	}
	if out := ok(t, b, "perm", "show"); !strings.Contains(out, url+" secret -> converse") {
		t.Errorf("perm show after the join = %q", out)
	}
	carolJoin := cli(t, c, "join", "secret", "--token", t1, "--perm", "act")
	sameRefusal(t, "join with a spent token", carolJoin, cli(t, c, "join", "nosuch", "--token", t1), "secret", "nosuch")
	if carolJoin.stderr != "error: join rejected: not_found: no such channel \"secret\", or the invite is invalid, used up or expired\n" {
		t.Errorf("carol's join: %q", carolJoin.stderr)
	}
	if out := ok(t, c, "perm", "show"); out != "default: notify\n" {
		t.Errorf("a refused join --perm recorded a level: %q", out)
	}
	if out := ok(t, a, "acl", "list", "--channel", "secret"); out != "alice\nbob\ndave\n" {
		t.Errorf("acl list = %q", out)
	}
	if out := ok(t, a, "--json", "acl", "list", "--channel", "secret"); out != `["alice","bob","dave"]`+"\n" {
		t.Errorf("acl list --json = %q", out)
	}

	// Invites: list (tokens in full), revoke, the uniform revoke answer.
	if out := ok(t, a, "invite", "list", "--channel", "secret", "--json"); out != "[]\n" {
		t.Errorf("invite list after the single use = %q", out)
	}
	out = ok(t, a, "invite", "create", "--channel", "secret", "--expires-in", "7d")
	m := regexp.MustCompile(`^invite token: ([A-Za-z0-9_-]{32})\nuses: unlimited\nexpires: (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("invite create --expires-in 7d = %q", out)
	}
	t2, exp2 := m[1], m[2]
	out = ok(t, a, "invite", "create", "--channel", "secret", "--json")
	if err := json.Unmarshal([]byte(out), &inv); err != nil || inv.Uses != nil || inv.ExpiresAt != nil || !strings.Contains(out, `"uses":null`) {
		t.Fatalf("unlimited invite --json = %q (%v)", out, err)
	}
	t3 := inv.Token
	want := map[string]string{t2: t2 + "\tuses: unlimited\texpires: " + exp2, t3: t3 + "\tuses: unlimited\texpires: never"}
	list := strings.Split(strings.TrimSuffix(ok(t, a, "invite", "list", "--channel", "secret"), "\n"), "\n")
	if len(list) != 2 || list[0] != want[min(t2, t3)] || list[1] != want[max(t2, t3)] {
		t.Errorf("invite list = %q, want %q", list, want)
	}
	for _, bad := range []string{"99999999d", "99999999999999999999999d", "3651d", "0s", "soon", "1h30"} {
		r := fails(t, 1, "--expires-in", a, "invite", "create", "--channel", "secret", "--expires-in", bad)
		if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine") {
			t.Errorf("--expires-in %s: %q", bad, r.stderr)
		}
	}
	fails(t, 1, "at least 1", a, "invite", "create", "--channel", "secret", "--uses", "0")
	// (A token may start with '-': after "--", or in --token.)
	if out := ok(t, c, "invite", "revoke", "--", t2); out != "✓ invite revoked\n" {
		t.Errorf("carol's invite revoke = %q, want the uniform answer", out)
	}
	if out := ok(t, a, "invite", "list", "--channel", "secret"); strings.Count(out, "\n") != 2 {
		t.Errorf("a non-admin's revoke deleted an invite: %q", out)
	}
	ok(t, a, "invite", "revoke", "--token", t2)
	var invs []map[string]any
	out = ok(t, a, "--json", "invite", "list", "--channel", "secret")
	if err := json.Unmarshal([]byte(out), &invs); err != nil || len(invs) != 1 || invs[0]["token"] != t3 || invs[0]["uses"] != nil ||
		invs[0]["expires_at"] != nil || invs[0]["channel"] != "secret" {
		t.Errorf("invite list after revoke = %q (%v)", out, err)
	}

	// Admin verbs by non-admins: unauthorized on a channel bob can see;
	// for carol, who cannot see it, exactly what a missing channel gives.
	adminVerbs := [][]string{
		{"channel", "delete", "%s"}, {"channel", "rename", "%s", "other"}, {"channel", "set-visibility", "%s", "public"},
		{"acl", "add", "carol", "--channel", "%s"}, {"acl", "remove", "dave", "--channel", "%s"}, {"acl", "list", "--channel", "%s"},
		{"invite", "create", "--channel", "%s"}, {"invite", "list", "--channel", "%s"},
		{"kick", "dave", "--channel", "%s"}, {"ban", "dave", "--channel", "%s"}, {"unban", "dave", "--channel", "%s"},
		{"bans", "--channel", "%s"},
	}
	with := func(args []string, name string) []string {
		out := make([]string, len(args))
		for i, a := range args {
			out[i] = strings.ReplaceAll(a, "%s", name)
		}
		return out
	}
	for _, v := range adminVerbs {
		fails(t, 1, `unauthorized: not authorized: you do not administer channel "secret"`, b, with(v, "secret")...)
		sameRefusal(t, strings.Join(v[:2], " "), cli(t, c, with(v, "secret")...), cli(t, c, with(v, "nosuch")...), "secret", "nosuch")
	}
	for _, v := range [][]string{{"who", "%s"}, {"send", "--channel", "%s", "hi"}, {"tail", "--channel", "%s"}} {
		sameRefusal(t, v[0], cli(t, c, with(v, "secret")...), cli(t, c, with(v, "nosuch")...), "secret", "nosuch")
	}
	fails(t, 1, "unauthorized: not authorized: server admin role required", b, "user", "list")
	fails(t, 1, "unauthorized: not authorized: server admin role required", b, "user", "remove", "carol")
	if out := ok(t, a, "acl", "list", "--channel", "secret"); out != "alice\nbob\ndave\n" {
		t.Errorf("refused verbs changed the ACL: %q", out)
	}

	// A rename keeps bob's tail, which follows the new name.
	bt := start(t, b, false, "tail", "--channel", "secret", "--as", "bt")
	bt.expectStderr(`^tailing #secret as bob/m/bt`)
	if out := ok(t, a, "channel", "rename", "secret", "vault"); out != "✓ renamed secret to vault\n" {
		t.Errorf("channel rename = %q", out)
	}
	bt.waitStderr("#secret was renamed to #vault")
	ok(t, a, "send", "--channel", "vault", "after the rename")
	if l := bt.next(); !regexp.MustCompile(`^\[vault\] alice/m/cli-\d+: after the rename$`).MatchString(l) {
		t.Errorf("tail after the rename printed %q", l)
	}
	ok(t, a, "channel", "create", "ops")
	fails(t, 1, `conflict: channel "ops" already exists`, a, "channel", "rename", "vault", "ops")

	// A ban ends bob's tail with the reason; bans; unban does not restore
	// membership.
	if out := ok(t, a, "ban", "bob", "--channel", "vault"); out != "✓ banned bob from vault\n" {
		t.Errorf("ban = %q", out)
	}
	bt.exitsWith(1, "unsubscribed from #vault: banned from the channel by alice")
	if out := ok(t, a, "bans", "--channel", "vault"); out != "bob\n" {
		t.Errorf("bans = %q", out)
	}
	if out := ok(t, a, "bans", "--channel", "vault", "--json"); out != `["bob"]`+"\n" {
		t.Errorf("bans --json = %q", out)
	}
	sameRefusal(t, "a banned user's join", cli(t, b, "join", "vault"), cli(t, b, "join", "nosuch"), "vault", "nosuch")
	if out := ok(t, a, "unban", "bob", "--channel", "vault", "--json"); out != `{"channel":"vault","user":"bob"}`+"\n" {
		t.Errorf("unban --json = %q", out)
	}
	if out := ok(t, a, "bans", "--channel", "vault", "--json"); out != "[]\n" {
		t.Errorf("bans after unban = %q", out)
	}
	fails(t, 1, `not_found: no such channel "vault"`, b, "join", "vault")
	// On a public channel the ban is visible as such, and unban lets the
	// user back in.
	ok(t, a, "ban", "carol", "--channel", "ops")
	fails(t, 1, `unauthorized: you are banned from channel "ops"`, c, "join", "ops")
	ok(t, a, "unban", "carol", "--channel", "ops")
	ok(t, c, "join", "ops")

	// Kick by session path and by user name.
	ct := start(t, c, false, "tail", "--channel", "ops", "--as", "ct")
	ct.expectStderr(`^tailing #ops as carol/m/ct`)
	if out := ok(t, a, "kick", "carol/m/ct", "--channel", "ops"); out != "✓ kicked carol/m/ct from ops\n" {
		t.Errorf("kick = %q", out)
	}
	ct.exitsWith(1, "unsubscribed from #ops: kicked from the channel by alice")
	ct = start(t, c, false, "tail", "--channel", "ops", "--as", "ct")
	ct.expectStderr(`^tailing #ops as carol/m/ct`)
	ok(t, a, "kick", "carol", "--channel", "ops")
	ct.exitsWith(1, "kicked from the channel by alice")
	fails(t, 2, "", a, "channel", "set-visibility", "ops", "secretive")
	if out := ok(t, a, "channel", "set-visibility", "ops", "unlisted"); out != "✓ ops is now unlisted\n" {
		t.Errorf("set-visibility = %q", out)
	}
	if out := ok(t, c, "channel", "list"); strings.Contains(out, "ops") {
		t.Errorf("an unlisted channel is listed to a non-member: %q", out)
	}

	// Users: list, remove (the removed user's tail ends with the reason).
	if out := ok(t, a, "user", "list"); out != "alice\nbob\ncarol\ndave\n" {
		t.Errorf("user list = %q", out)
	}
	dt := start(t, d, false, "tail", "--channel", "ops")
	dt.expectStderr(`^tailing #ops as dave/m/`)
	if out := ok(t, a, "user", "remove", "dave"); out != "✓ removed user dave\n" {
		t.Errorf("user remove = %q", out)
	}
	dt.exitsWith(1, "user removed from this server")
	if out := ok(t, a, "--json", "user", "list"); out != `["alice","bob","carol"]`+"\n" {
		t.Errorf("user list --json after remove = %q", out)
	}
	fails(t, 1, `no user named "dave"`, a, "user", "remove", "dave")

	// Deleting a channel ends its tails with the reason.
	bt = start(t, b, false, "tail", "--channel", "ops")
	bt.expectStderr(`^tailing #ops`)
	if out := ok(t, a, "channel", "delete", "ops", "--json"); out != `{"channel":"ops"}`+"\n" {
		t.Errorf("channel delete --json = %q", out)
	}
	bt.exitsWith(1, "unsubscribed from #ops: channel deleted by alice")
	if out := ok(t, a, "channel", "list"); out != "vault\tprivate\t(member)\n" {
		t.Errorf("channel list after delete = %q", out)
	}
}
