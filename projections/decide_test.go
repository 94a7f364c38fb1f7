package projections

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/conclave/conclave/protocol"
)

func TestRegister(t *testing.T) {
	e := newEnv(t, "alice")
	tests := []struct {
		name string
		cmd  Register
		code protocol.Code
		msg  string
	}{
		{"taken", Register{User: "alice", Machine: "m2", Pubkey: key(50)}, protocol.CodeConflict, `username "alice" is already taken`},
		{"key enrolled", Register{User: "bob", Machine: "m", Pubkey: key(1)}, protocol.CodeConflict, "this key is already enrolled on this server"},
		{"bad user", Register{User: "a/b", Machine: "m", Pubkey: key(50)}, protocol.CodeMalformed, ""},
		{"bad machine", Register{User: "bob", Machine: "", Pubkey: key(50)}, protocol.CodeMalformed, ""},
		{"short key", Register{User: "bob", Machine: "m", Pubkey: key(50)[:31]}, protocol.CodeMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.refused(Actor{Path: "bob/m/s"}, tt.cmd, tt.code, tt.msg)
		})
	}
	t.Run("ok", func(t *testing.T) {
		e.t = t
		e.ok(Actor{User: "bob", Path: "bob/m/s"}, Register{User: "bob", Machine: "m", Pubkey: key(50)})
		u, m, ok := e.s.UserByKey(key(50))
		if !ok || u != "bob" || m != "m" {
			t.Fatalf("UserByKey = %q %q %v, want bob m true", u, m, ok)
		}
		if got := e.s.Machines("bob"); len(got) != 1 || got[0].AddedAtMs != t0.UnixMilli() {
			t.Fatalf("Machines(bob) = %+v, want one machine added at t0", got)
		}
	})
}

func TestMachines(t *testing.T) {
	e := newEnv(t, "alice", "bob")
	alice := as("alice")
	tests := []struct {
		name string
		cmd  Command
		code protocol.Code
		msg  string
	}{
		{"add taken name", MachineAdd{Machine: "m", Pubkey: key(60)}, protocol.CodeConflict, `machine "m" already exists`},
		{"add key of bob", MachineAdd{Machine: "m2", Pubkey: key(2)}, protocol.CodeConflict, "this key is already enrolled on this server"},
		{"add bad name", MachineAdd{Machine: "a/b", Pubkey: key(60)}, protocol.CodeMalformed, ""},
		{"add short key", MachineAdd{Machine: "m2", Pubkey: key(60)[:5]}, protocol.CodeMalformed, ""},
		{"remove unknown", MachineRemove{Machine: "nope"}, protocol.CodeNotFound, `no machine named "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			e.refused(alice, tt.cmd, tt.code, tt.msg)
		})
	}
	t.Run("add and remove", func(t *testing.T) {
		e.t = t
		e.ok(alice, MachineAdd{Machine: "laptop", Pubkey: key(60)})
		if u, m, _ := e.s.UserByKey(key(60)); u != "alice" || m != "laptop" {
			t.Fatalf("UserByKey = %q %q, want alice laptop", u, m)
		}
		// Same machine name under another user is fine.
		e.ok(as("bob"), MachineAdd{Machine: "laptop", Pubkey: key(61)})
		e.ok(alice, MachineRemove{Machine: "laptop"})
		if _, _, ok := e.s.UserByKey(key(60)); ok {
			t.Fatal("removed machine's key still resolves")
		}
		if got := len(e.s.Machines("alice")); got != 1 {
			t.Fatalf("got %d machines, want 1", got)
		}
		if _, _, ok := e.s.UserByKey(key(61)); !ok {
			t.Fatal("bob's laptop was removed too")
		}
	})
}

func TestUserRemove(t *testing.T) {
	e := newEnv(t, "alice", "bob", "root")
	e.refused(as("alice"), UserRemove{User: "bob"}, protocol.CodeUnauthorized, "not authorized: server admin role required")
	e.refused(admin("root"), UserRemove{User: "zed"}, protocol.CodeNotFound, `no user named "zed"`)

	e.ok(as("bob"), CreateChannel{Channel: "bobs", Visibility: protocol.Private})
	e.ok(as("bob"), InviteCreate{Channel: "bobs", Token: "tok-bobs"})
	e.ok(as("bob"), Ban{Channel: "bobs", User: "alice"})
	e.ok(as("alice"), CreateChannel{Channel: "alices", Visibility: protocol.Private})
	e.ok(as("alice"), ACLAdd{Channel: "alices", User: "bob"})
	e.ok(as("alice"), CreateChannel{Channel: "pub"})
	e.ok(as("alice"), Ban{Channel: "pub", User: "bob"})
	e.ok(as("bob"), MachineAdd{Machine: "m2", Pubkey: key(70)})

	e.ok(admin("root"), UserRemove{User: "bob"})
	if e.s.UserExists("bob") {
		t.Fatal("bob still exists")
	}
	if _, ok := e.s.Channel("bobs"); ok {
		t.Fatal("bob's channel survived")
	}
	if got := e.s.Invites("bobs"); len(got) != 0 {
		t.Fatalf("got invites %v for deleted channel, want none", got)
	}
	if e.s.IsMember("alices", "bob") {
		t.Fatal("bob still on alice's ACL")
	}
	if !e.s.IsBanned("pub", "bob") {
		t.Fatal("ban naming bob elsewhere was lifted, want it kept")
	}
	for _, k := range []byte{2, 70} {
		if _, _, ok := e.s.UserByKey(key(k)); ok {
			t.Fatalf("key %d of removed user still resolves", k)
		}
	}

	// Re-registering the name inherits nothing.
	e.ok(Actor{User: "bob", Path: "bob/m/s"}, Register{User: "bob", Machine: "m", Pubkey: key(71)})
	if e.s.IsMember("alices", "bob") || e.s.Visible(as("bob"), "alices") {
		t.Fatal("new bob inherited access to alices")
	}
	e.ok(as("alice"), CreateChannel{Channel: "bobs", Visibility: protocol.Private})
	if e.s.CanAdminister(as("bob"), "bobs") {
		t.Fatal("new bob administers the new bobs")
	}
	if got := e.s.Machines("bob"); len(got) != 1 || !got[0].Pubkey.Equal(key(71)) {
		t.Fatalf("new bob machines = %+v, want only the new key", got)
	}
}

func TestCreateChannel(t *testing.T) {
	e := newEnv(t, "alice")
	e.ok(as("alice"), CreateChannel{Channel: "ops"})
	ch, ok := e.s.Channel("ops")
	if !ok || ch.Visibility != protocol.Public || ch.CreatedBy != "alice" || ch.CreatedAtMs != t0.UnixMilli() {
		t.Fatalf("Channel(ops) = %+v %v, want public by alice at t0", ch, ok)
	}
	if !e.s.IsMember("ops", "alice") {
		t.Fatal("creator not on ACL")
	}
	e.refused(as("alice"), CreateChannel{Channel: "ops"}, protocol.CodeConflict, `channel "ops" already exists`)
	e.refused(as("alice"), CreateChannel{Channel: " x"}, protocol.CodeMalformed, "")
	e.refused(as("alice"), CreateChannel{Channel: "x", Visibility: "secret"}, protocol.CodeMalformed, "")
	e.refused(as("ghost"), CreateChannel{Channel: "x"}, protocol.CodeUnauthorized, "")
	e.refused(Actor{Path: "server", ServerAdmin: true}, CreateChannel{Channel: "x"}, protocol.CodeUnauthorized, "")
}

// TestVisibilityOracle checks that a private channel the actor may not see
// is refused exactly like one that does not exist.
func TestVisibilityOracle(t *testing.T) {
	e := newEnv(t, "alice", "eve")
	e.ok(as("alice"), CreateChannel{Channel: "secret", Visibility: protocol.Private})
	e.ok(as("alice"), InviteCreate{Channel: "secret", Token: "tok"})
	eve := as("eve")
	cmds := func(ch string) []Command {
		return []Command{
			Join{Channel: ch}, Join{Channel: ch, Token: "tok-wrong"},
			DeleteChannel{Channel: ch}, RenameChannel{Channel: ch, NewName: "new"},
			SetVisibility{Channel: ch, Visibility: protocol.Public},
			ACLAdd{Channel: ch, User: "eve"}, ACLRemove{Channel: ch, User: "alice"},
			InviteCreate{Channel: ch, Token: "t2"}, Ban{Channel: ch, User: "alice"},
			Unban{Channel: ch, User: "alice"}, Kick{Channel: ch, Target: "alice"},
		}
	}
	for i, hidden := range cmds("secret") {
		missing := cmds("nowhere")[i]
		t.Run(fmt.Sprintf("%T", hidden), func(t *testing.T) {
			_, h := e.s.Decide(eve, hidden, t0)
			_, m := e.s.Decide(eve, missing, t0)
			// Every join refusal is the one text that also names the invite.
			refusal := protocol.NoSuchChannel
			if _, join := hidden.(Join); join {
				refusal = protocol.NoSuchChannelOrInvite
			}
			want := refusal("secret")
			if h == nil || *h != *want {
				t.Fatalf("private: got %v, want %v", h, want)
			}
			if m == nil || m.Code != h.Code || m.Message != refusal("nowhere").Message {
				t.Fatalf("missing: got %v, want %v", m, refusal("nowhere"))
			}
		})
	}
	t.Run("list", func(t *testing.T) {
		if got := e.s.ListChannels(eve); len(got) != 0 {
			t.Fatalf("ListChannels(eve) = %v, want none", got)
		}
		if e.s.Visible(eve, "secret") {
			t.Fatal("Visible(eve, secret) = true")
		}
	})
	t.Run("revoke", func(t *testing.T) {
		evs, perr := e.s.Decide(eve, InviteRevoke{Token: "tok"}, t0)
		if perr != nil || len(evs) != 0 {
			t.Fatalf("revoke by non-admin = %v %v, want nil nil", evs, perr)
		}
		evs, perr = e.s.Decide(eve, InviteRevoke{Token: "nonexistent"}, t0)
		if perr != nil || len(evs) != 0 {
			t.Fatalf("revoke of unknown token = %v %v, want nil nil", evs, perr)
		}
	})
	t.Run("visible non-admin", func(t *testing.T) {
		e.t = t
		e.ok(as("alice"), CreateChannel{Channel: "hall", Visibility: protocol.Unlisted})
		e.refused(eve, DeleteChannel{Channel: "hall"}, protocol.CodeUnauthorized, `not authorized: you do not administer channel "hall"`)
	})
}

func TestListChannels(t *testing.T) {
	e := newEnv(t, "alice", "bob", "root")
	e.ok(as("alice"), CreateChannel{Channel: "pub"})
	e.ok(as("alice"), CreateChannel{Channel: "unl", Visibility: protocol.Unlisted})
	e.ok(as("alice"), CreateChannel{Channel: "priv", Visibility: protocol.Private})
	e.ok(as("alice"), CreateChannel{Channel: "priv2", Visibility: protocol.Private})
	e.ok(as("alice"), ACLAdd{Channel: "priv2", User: "bob"})
	e.ok(as("bob"), Join{Channel: "unl"}) // joining does not add to the ACL
	tests := []struct {
		name  string
		actor Actor
		want  []protocol.ChannelInfo
	}{
		{"bob", as("bob"), []protocol.ChannelInfo{{Name: "priv2", Visibility: protocol.Private, Member: true}, {Name: "pub", Visibility: protocol.Public}}},
		{"admin", admin("root"), []protocol.ChannelInfo{
			{Name: "priv", Visibility: protocol.Private}, {Name: "priv2", Visibility: protocol.Private},
			{Name: "pub", Visibility: protocol.Public}, {Name: "unl", Visibility: protocol.Unlisted}}},
		{"creator", as("alice"), []protocol.ChannelInfo{
			{Name: "priv", Visibility: protocol.Private, Member: true}, {Name: "priv2", Visibility: protocol.Private, Member: true},
			{Name: "pub", Visibility: protocol.Public, Member: true}, {Name: "unl", Visibility: protocol.Unlisted, Member: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.s.ListChannels(tt.actor); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestJoin(t *testing.T) {
	e := newEnv(t, "alice", "bob", "root")
	e.ok(as("alice"), CreateChannel{Channel: "pub"})
	e.ok(as("alice"), CreateChannel{Channel: "priv", Visibility: protocol.Private})
	e.ok(as("alice"), CreateChannel{Channel: "other", Visibility: protocol.Private})
	e.ok(as("alice"), InviteCreate{Channel: "other", Token: "tok-other"})
	bob := as("bob")

	t.Run("public no acl", func(t *testing.T) {
		e.t = t
		if evs := e.ok(bob, Join{Channel: "pub", Token: "junk"}); len(evs) != 0 {
			t.Fatalf("got %d events, want 0", len(evs))
		}
		if e.s.IsMember("pub", "bob") {
			t.Fatal("public join added bob to the ACL")
		}
	})
	t.Run("missing", func(t *testing.T) {
		e.t = t
		e.refused(bob, Join{Channel: "nope"}, protocol.CodeNotFound, protocol.NoSuchChannelOrInvite("nope").Message)
	})
	t.Run("admin and member need no token", func(t *testing.T) {
		e.t = t
		if evs := e.ok(admin("root"), Join{Channel: "priv"}); len(evs) != 0 {
			t.Fatalf("got %d events, want 0", len(evs))
		}
		if evs := e.ok(as("alice"), Join{Channel: "priv", Token: "tok-other"}); len(evs) != 0 {
			t.Fatalf("got %d events, want 0", len(evs))
		}
		if got := len(e.s.Invites("other")); got != 1 {
			t.Fatalf("member join consumed a token: %d invites left", got)
		}
	})
	t.Run("wrong channel token", func(t *testing.T) {
		e.t = t
		e.refused(bob, Join{Channel: "priv", Token: "tok-other"}, protocol.CodeNotFound, protocol.NoSuchChannelOrInvite("priv").Message)
	})
	t.Run("expired", func(t *testing.T) {
		e.t = t
		e.ok(as("alice"), InviteCreate{Channel: "priv", Token: "tok-exp", ExpiresAtMs: i64(t0.Add(time.Minute).UnixMilli())})
		e.now = t0.Add(time.Minute)
		defer func() { e.now = t0 }()
		e.refused(bob, Join{Channel: "priv", Token: "tok-exp"}, protocol.CodeNotFound, protocol.NoSuchChannelOrInvite("priv").Message)
		if got := len(e.s.Invites("priv")); got != 1 {
			t.Fatalf("got %d invites, want the expired one still listed", got)
		}
		e.now = t0.Add(time.Minute - time.Millisecond)
		e.ok(as("root"), Join{Channel: "priv", Token: "tok-exp"})
		if !e.s.IsMember("priv", "root") {
			t.Fatal("token before expiry refused")
		}
	})
	t.Run("revoked", func(t *testing.T) {
		e.t = t
		e.ok(as("alice"), InviteCreate{Channel: "priv", Token: "tok-rev"})
		if evs := e.ok(as("alice"), InviteRevoke{Token: "tok-rev"}); len(evs) != 1 || evs[0].Type != EvInviteRevoked {
			t.Fatalf("revoke events = %v, want one invite_revoked", evs)
		}
		e.refused(bob, Join{Channel: "priv", Token: "tok-rev"}, protocol.CodeNotFound, protocol.NoSuchChannelOrInvite("priv").Message)
	})
}

// joiners decides and applies a Join for n fresh users, in sequence as the
// server's writer does, and returns how many were admitted.
func joiners(e *env, n int, channel, token string) int {
	admitted := 0
	for i := range n {
		u := fmt.Sprintf("joiner%d", i)
		if !e.s.UserExists(u) {
			e.register(u)
		}
		if _, perr := e.do(as(u), Join{Channel: channel, Token: token}); perr == nil {
			admitted++
		}
	}
	return admitted
}

func TestInviteUses(t *testing.T) {
	tests := []struct {
		name    string
		uses    *int64
		joiners int
		want    int
	}{
		{"single use", i64(1), 16, 1},
		{"two uses", i64(2), 5, 2},
		{"unlimited", nil, 12, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "alice")
			e.ok(as("alice"), CreateChannel{Channel: "priv", Visibility: protocol.Private})
			e.ok(as("alice"), InviteCreate{Channel: "priv", Token: "tok", Uses: tt.uses})
			if got := joiners(e, tt.joiners, "priv", "tok"); got != tt.want {
				t.Fatalf("got %d admitted, want %d", got, tt.want)
			}
			if got := len(e.s.ACL("priv")); got != tt.want+1 {
				t.Fatalf("got %d ACL members, want %d", got, tt.want+1)
			}
			invs := e.s.Invites("priv")
			if tt.uses != nil && len(invs) != 0 {
				t.Fatalf("spent invite still listed: %+v", invs)
			}
			if tt.uses == nil && (len(invs) != 1 || invs[0].Uses != nil) {
				t.Fatalf("unlimited invite = %+v, want one with nil uses", invs)
			}
		})
	}
}

func TestInviteDecrements(t *testing.T) {
	e := newEnv(t, "alice", "bob")
	e.ok(as("alice"), CreateChannel{Channel: "priv", Visibility: protocol.Private})
	e.ok(as("alice"), InviteCreate{Channel: "priv", Token: "tok", Uses: i64(3), ExpiresAtMs: i64(t0.UnixMilli() + 1000)})
	evs := e.ok(as("bob"), Join{Channel: "priv", Token: "tok"})
	if len(evs) != 2 || evs[0].Type != EvInviteRedeemed || evs[1].Type != EvACLAdded {
		t.Fatalf("got events %v, want invite_redeemed, acl_added", evs)
	}
	invs := e.s.Invites("priv")
	if len(invs) != 1 || *invs[0].Uses != 2 || *invs[0].ExpiresAtMs != t0.UnixMilli()+1000 || invs[0].CreatedBy != "alice" {
		t.Fatalf("invite = %+v, want 2 uses left, created by alice", invs)
	}
	e.refused(as("alice"), InviteCreate{Channel: "priv", Token: "tok"}, protocol.CodeConflict, "an invite with this token already exists")
	e.refused(as("alice"), InviteCreate{Channel: "priv", Token: "t0", Uses: i64(0)}, protocol.CodeMalformed, "")
	e.refused(as("alice"), InviteCreate{Channel: "priv"}, protocol.CodeMalformed, "")
	e.refused(as("bob"), InviteCreate{Channel: "priv", Token: "t9"}, protocol.CodeUnauthorized, `not authorized: you do not administer channel "priv"`)
}

func TestBans(t *testing.T) {
	e := newEnv(t, "alice", "bob")
	e.ok(as("alice"), CreateChannel{Channel: "pub"})
	e.ok(as("alice"), ACLAdd{Channel: "pub", User: "bob"})
	e.ok(as("alice"), Ban{Channel: "pub", User: "bob"})
	if e.s.IsMember("pub", "bob") || !e.s.IsBanned("pub", "bob") {
		t.Fatal("ban did not move bob from the ACL to the bans")
	}
	if evs := e.ok(as("alice"), Ban{Channel: "pub", User: "bob"}); len(evs) != 0 {
		t.Fatalf("second ban: got %d events, want 0", len(evs))
	}
	e.refused(as("alice"), Ban{Channel: "pub", User: "zed"}, protocol.CodeNotFound, `no user named "zed"`)
	e.refused(as("bob"), Join{Channel: "pub"}, protocol.CodeUnauthorized, `you are banned from channel "pub"`)

	e.ok(as("alice"), Unban{Channel: "pub", User: "bob"})
	if e.s.IsMember("pub", "bob") || e.s.IsBanned("pub", "bob") {
		t.Fatal("unban restored the ACL or kept the ban")
	}
	if evs := e.ok(as("alice"), Unban{Channel: "pub", User: "bob"}); len(evs) != 0 {
		t.Fatalf("unban of non-banned: got %d events, want 0", len(evs))
	}
	e.ok(as("bob"), Join{Channel: "pub"})

	t.Run("acl add lifts ban", func(t *testing.T) {
		e.t = t
		e.ok(as("alice"), Ban{Channel: "pub", User: "bob"})
		e.ok(as("alice"), ACLAdd{Channel: "pub", User: "bob"})
		if !e.s.IsMember("pub", "bob") || e.s.IsBanned("pub", "bob") {
			t.Fatal("ACLAdd did not lift the ban")
		}
		if evs := e.ok(as("alice"), ACLAdd{Channel: "pub", User: "bob"}); len(evs) != 0 {
			t.Fatalf("ACLAdd of a member: got %d events, want 0", len(evs))
		}
		e.refused(as("alice"), ACLAdd{Channel: "pub", User: "zed"}, protocol.CodeNotFound, `no user named "zed"`)
	})
	t.Run("private ban is hidden", func(t *testing.T) {
		e.t = t
		e.ok(as("alice"), CreateChannel{Channel: "priv", Visibility: protocol.Private})
		e.ok(as("alice"), InviteCreate{Channel: "priv", Token: "tok"})
		e.ok(as("alice"), Ban{Channel: "priv", User: "bob"})
		e.refused(as("bob"), Join{Channel: "priv", Token: "tok"}, protocol.CodeNotFound, protocol.NoSuchChannelOrInvite("priv").Message)
	})
	t.Run("acl remove", func(t *testing.T) {
		e.t = t
		if evs := e.ok(as("alice"), ACLRemove{Channel: "pub", User: "bob"}); len(evs) != 1 {
			t.Fatalf("got %d events, want 1", len(evs))
		}
		if evs := e.ok(as("alice"), ACLRemove{Channel: "pub", User: "bob"}); len(evs) != 0 {
			t.Fatalf("remove of non-member: got %d events, want 0", len(evs))
		}
	})
}

func TestKick(t *testing.T) {
	e := newEnv(t, "alice", "bob")
	e.ok(as("alice"), CreateChannel{Channel: "pub"})
	for _, target := range []string{"bob", "bob/m/s"} {
		evs := e.ok(as("alice"), Kick{Channel: "pub", Target: target})
		if len(evs) != 1 || evs[0].Type != EvKicked {
			t.Fatalf("kick %q: got %v, want one kicked event", target, evs)
		}
	}
	for _, target := range []string{"bob/m", "", "a//b"} {
		e.refused(as("alice"), Kick{Channel: "pub", Target: target}, protocol.CodeMalformed, "")
	}
	e.refused(as("bob"), Kick{Channel: "pub", Target: "alice"}, protocol.CodeUnauthorized, `not authorized: you do not administer channel "pub"`)
}

func TestRenameAndDelete(t *testing.T) {
	e := newEnv(t, "alice", "bob", "carol")
	e.ok(as("alice"), CreateChannel{Channel: "old", Visibility: protocol.Private})
	e.ok(as("alice"), ACLAdd{Channel: "old", User: "bob"})
	e.ok(as("alice"), Ban{Channel: "old", User: "carol"})
	e.ok(as("alice"), InviteCreate{Channel: "old", Token: "tok"})
	e.ok(as("alice"), CreateChannel{Channel: "taken"})

	e.refused(as("alice"), RenameChannel{Channel: "old", NewName: "taken"}, protocol.CodeConflict, `channel "taken" already exists`)
	e.refused(as("alice"), RenameChannel{Channel: "old", NewName: "a/b"}, protocol.CodeMalformed, "")
	e.ok(as("alice"), RenameChannel{Channel: "old", NewName: "new"})
	if _, ok := e.s.Channel("old"); ok {
		t.Fatal("old name still exists")
	}
	if got, want := e.s.ACL("new"), []string{"alice", "bob"}; !slices.Equal(got, want) {
		t.Fatalf("ACL(new) = %v, want %v", got, want)
	}
	if got := e.s.Bans("new"); !slices.Equal(got, []string{"carol"}) {
		t.Fatalf("Bans(new) = %v, want [carol]", got)
	}
	if got := e.s.Invites("new"); len(got) != 1 || got[0].Channel != "new" {
		t.Fatalf("Invites(new) = %+v, want the moved invite", got)
	}

	if evs := e.ok(as("alice"), SetVisibility{Channel: "new", Visibility: protocol.Private}); len(evs) != 0 {
		t.Fatalf("unchanged visibility: got %d events, want 0", len(evs))
	}
	e.refused(as("alice"), SetVisibility{Channel: "new", Visibility: "bogus"}, protocol.CodeMalformed, "")
	e.ok(as("alice"), SetVisibility{Channel: "new", Visibility: protocol.Unlisted})
	if ch, _ := e.s.Channel("new"); ch.Visibility != protocol.Unlisted {
		t.Fatalf("visibility = %q, want unlisted", ch.Visibility)
	}

	e.ok(as("alice"), DeleteChannel{Channel: "new"})
	e.ok(as("bob"), CreateChannel{Channel: "new", Visibility: protocol.Private})
	if got := e.s.ACL("new"); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("ACL of recreated channel = %v, want [bob]", got)
	}
	if len(e.s.Bans("new")) != 0 || len(e.s.Invites("new")) != 0 || e.s.CanAdminister(as("alice"), "new") {
		t.Fatal("recreated channel inherited bans, invites or admin")
	}
	// The old invite is gone, and the old ban no longer applies (carol is
	// simply not a member).
	e.refused(as("carol"), Join{Channel: "new", Token: "tok"}, protocol.CodeNotFound, protocol.NoSuchChannelOrInvite("new").Message)
}

func TestPointerCommands(t *testing.T) {
	e := newEnv(t, "alice")
	e.ok(as("alice"), &CreateChannel{Channel: "ops"})
	if _, ok := e.s.Channel("ops"); !ok {
		t.Fatal("pointer command not decided")
	}
	if _, perr := e.s.Decide(as("alice"), nil, t0); perr == nil || perr.Code != protocol.CodeInternal {
		t.Fatalf("nil command: got %v, want internal", perr)
	}
}

func TestDecideDoesNotModify(t *testing.T) {
	e := newEnv(t, "alice", "bob")
	e.ok(as("alice"), CreateChannel{Channel: "priv", Visibility: protocol.Private})
	e.ok(as("alice"), InviteCreate{Channel: "priv", Token: "tok", Uses: i64(1)})
	before := e.snapshot()
	for range 3 {
		if _, perr := e.s.Decide(as("bob"), Join{Channel: "priv", Token: "tok"}, t0); perr != nil {
			t.Fatalf("Decide = %v, want success", perr)
		}
	}
	if after := e.snapshot(); string(after) != string(before) {
		t.Fatalf("Decide changed the state:\n%s\n%s", before, after)
	}
}
