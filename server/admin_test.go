package server

import (
	"crypto/ed25519"
	"strings"
	"sync"
	"testing"

	"github.com/conclave/conclave/protocol"
)

// adminEnv has alice (server admin, pinned), bob and carol.
func adminEnv(t *testing.T, cfg Config) (*testEnv, *client, *client, *client) {
	t.Helper()
	key := newKey(t)
	cfg.Admins = append(cfg.Admins, Admin{User: "alice", Key: key.Public().(ed25519.PublicKey)})
	env := newTestEnv(t, cfg)
	a, f := env.handshake(key, "s", &protocol.Frame{Username: "alice", Machine: "wa"})
	if f.Type != protocol.TEstablished || !*f.Admin {
		t.Fatalf("alice = %+v", f)
	}
	return env, a, env.register("bob", "wb", "s"), env.register("carol", "wc", "s")
}

func TestSingleUseInviteAdmitsExactlyOneOf16(t *testing.T) {
	env, a, _, _ := adminEnv(t, Config{})
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops", Visibility: "private"})
	one := int64(1)
	tok := a.ok(&protocol.Frame{Type: protocol.TInviteCreate, Channel: "ops", Uses: &one}).Token
	clients := make([]*client, 16)
	for i := range clients {
		clients[i] = env.register("r"+string(rune('a'+i)), "m", "s")
	}
	var wg sync.WaitGroup
	results := make([]*protocol.Frame, 16)
	for i, c := range clients {
		wg.Add(1)
		go func(i int, c *client) {
			defer wg.Done()
			results[i] = c.req(&protocol.Frame{Type: protocol.TJoin, Channel: "ops", Token: tok})
		}(i, c)
	}
	wg.Wait()
	admitted := 0
	for _, r := range results {
		if r.Type == protocol.TJoined {
			admitted++
		} else if r.Code != protocol.CodeNotFound {
			t.Errorf("refusal = %+v, want not_found", r)
		}
	}
	if admitted != 1 {
		t.Fatalf("%d of 16 concurrent redeemers admitted, want exactly 1", admitted)
	}
	if acl := a.ok(&protocol.Frame{Type: protocol.TACLList, Channel: "ops"}); len(acl.Users) != 2 {
		t.Fatalf("ACL = %v, want alice and the one redeemer", acl.Users)
	}
}

func TestUnlimitedInviteAdmitsAll12(t *testing.T) {
	env, a, _, _ := adminEnv(t, Config{})
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops", Visibility: "private"})
	tok := a.ok(&protocol.Frame{Type: protocol.TInviteCreate, Channel: "ops"}).Token
	var wg sync.WaitGroup
	clients := make([]*client, 12)
	for i := range clients {
		clients[i] = env.register("j"+string(rune('a'+i)), "m", "s")
	}
	for _, c := range clients {
		wg.Add(1)
		go func(c *client) {
			defer wg.Done()
			if r := c.req(&protocol.Frame{Type: protocol.TJoin, Channel: "ops", Token: tok}); r.Type != protocol.TJoined {
				t.Errorf("join = %+v", r)
			}
		}(c)
	}
	wg.Wait()
	if acl := a.ok(&protocol.Frame{Type: protocol.TACLList, Channel: "ops"}); len(acl.Users) != 13 {
		t.Fatalf("ACL has %d users, want 13: %v", len(acl.Users), acl.Users)
	}
}

func TestPrivateChannelIsIndistinguishableFromMissing(t *testing.T) {
	_, a, b, _ := adminEnv(t, Config{})
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "secret", Visibility: "private"})
	requests := func(ch string) []*protocol.Frame {
		return []*protocol.Frame{
			{Type: protocol.TJoin, Channel: ch},
			{Type: protocol.TJoin, Channel: ch, Token: "not-a-token"},
			{Type: protocol.TWho, Channel: ch},
			{Type: protocol.TReadSince, Channel: ch},
			{Type: protocol.TChannelMsg, Channel: ch, Body: body("x")},
			{Type: protocol.TDeleteChannel, Channel: ch},
			{Type: protocol.TRenameChannel, Channel: ch, NewName: "zz"},
			{Type: protocol.TSetVisibility, Channel: ch, Visibility: "public"},
			{Type: protocol.TACLAdd, Channel: ch, User: "bob"},
			{Type: protocol.TACLList, Channel: ch},
			{Type: protocol.TInviteCreate, Channel: ch},
			{Type: protocol.TInviteList, Channel: ch},
			{Type: protocol.TKick, Channel: ch, Target: "carol"},
			{Type: protocol.TBan, Channel: ch, User: "carol"},
			{Type: protocol.TBanList, Channel: ch},
		}
	}
	hidden, missing := requests("secret"), requests("absent")
	for i := range hidden {
		h := b.req(hidden[i])
		m := b.req(missing[i])
		hn := string(h.Code) + ":" + strings.ReplaceAll(h.Message, "secret", "X")
		mn := string(m.Code) + ":" + strings.ReplaceAll(m.Message, "absent", "X")
		if h.Type != protocol.TError || hn != mn {
			t.Errorf("%s: private %q vs missing %q", hidden[i].Type, hn, mn)
		}
	}
	if l := b.ok(&protocol.Frame{Type: protocol.TListChannels}); len(l.Channels) != 0 {
		t.Errorf("bob lists %+v", l.Channels)
	}
	// invite_revoke answers the same whether or not the token exists.
	tok := a.ok(&protocol.Frame{Type: protocol.TInviteCreate, Channel: "secret"}).Token
	r1 := b.ok(&protocol.Frame{Type: protocol.TInviteRevoke, Token: tok})
	r2 := b.ok(&protocol.Frame{Type: protocol.TInviteRevoke, Token: "nope"})
	if r1.Detail != r2.Detail {
		t.Errorf("invite_revoke replies differ: %+v vs %+v", r1, r2)
	}
	b.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "secret", Token: tok}) // bob's revoke did nothing
}

func TestNonAdminOnVisibleChannelIsUnauthorized(t *testing.T) {
	_, a, b, _ := adminEnv(t, Config{})
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	for _, f := range []*protocol.Frame{
		{Type: protocol.TDeleteChannel, Channel: "ops"},
		{Type: protocol.TBan, Channel: "ops", User: "carol"},
		{Type: protocol.TInviteCreate, Channel: "ops"},
		{Type: protocol.TListUsers},
		{Type: protocol.TUserRemove, User: "carol"},
	} {
		b.fail(f, protocol.CodeUnauthorized)
	}
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "dev"})
	a.fail(&protocol.Frame{Type: protocol.TRenameChannel, Channel: "ops", NewName: "dev"}, protocol.CodeConflict)
}

func TestModerationNoticesAndDurability(t *testing.T) {
	dir := t.TempDir()
	env, a, b, c := adminEnv(t, Config{DataDir: dir})
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
	for _, cl := range []*client{a, b, c} {
		cl.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
	}
	a.ok(&protocol.Frame{Type: protocol.TKick, Channel: "ops", Target: "bob/wb/s"})
	if n := b.nextOfType(protocol.TUnsubscribed); n.Channel != "ops" || !strings.Contains(n.Reason, "kicked") {
		t.Fatalf("kick notice = %+v", n)
	}
	b.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"}) // a kick is not a ban
	a.ok(&protocol.Frame{Type: protocol.TBan, Channel: "ops", User: "bob"})
	if n := b.nextOfType(protocol.TUnsubscribed); !strings.Contains(n.Reason, "banned") {
		t.Fatalf("ban notice = %+v", n)
	}
	b.fail(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"}, protocol.CodeUnauthorized)
	a.ok(&protocol.Frame{Type: protocol.TRenameChannel, Channel: "ops", NewName: "ops2"})
	if n := c.nextOfType(protocol.TRenamed); n.Channel != "ops" || n.NewName != "ops2" {
		t.Fatalf("rename notice = %+v", n)
	}
	// Carol is still subscribed under the new name.
	a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops2"})
	a.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops2", Body: body("still here")})
	if m := c.nextOfType(protocol.TChannelMsg); m.Channel != "ops2" {
		t.Fatalf("delivery after rename = %+v", m)
	}
	env.close()

	// The ban survives a restart; unban does not restore membership.
	env2 := newTestEnv(t, Config{DataDir: dir, Admins: env.srv.cfg.Admins})
	bans := env2.srv.state.Bans("ops2")
	if len(bans) != 1 || bans[0] != "bob" {
		t.Fatalf("bans after restart = %v", bans)
	}
}

func TestUserRemoveCascades(t *testing.T) {
	env, a, b, _ := adminEnv(t, Config{})
	b.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "bobs", Visibility: "private"})
	b.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "bobs"})
	a.ok(&protocol.Frame{Type: protocol.TUserRemove, User: "bob"})
	if last := b.waitClosed(); last == nil || protocol.Reason(last.Reason) != protocol.ReasonUserRemoved {
		t.Fatalf("bob's last frame = %+v", last)
	}
	if l := a.ok(&protocol.Frame{Type: protocol.TListChannels}); len(l.Channels) != 0 {
		t.Fatalf("bob's channel survived: %+v", l.Channels)
	}
	// The name is free again and inherits nothing.
	nb := env.register("bob", "new", "s")
	nb.fail(&protocol.Frame{Type: protocol.TJoin, Channel: "bobs"}, protocol.CodeNotFound)
	// A pinned admin name cannot be claimed with another key.
	if _, f := env.handshake(newKey(t), "s", &protocol.Frame{Username: "alice", Machine: "x"}); f.Code != protocol.CodeUnauthorized {
		t.Fatalf("claiming alice = %+v", f)
	}
}
