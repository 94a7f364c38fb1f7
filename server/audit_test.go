package server

import (
	"strings"
	"testing"

	"github.com/conclave/conclave/protocol"
)

func TestAuditOverTheWire(t *testing.T) {
	_, a, b, c := adminEnv(t, Config{})
	b.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "bobs"})
	b.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "bobs"})
	c.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "bobs"})
	tok := b.ok(&protocol.Frame{Type: protocol.TInviteCreate, Channel: "bobs"}).Token
	b.ok(&protocol.Frame{Type: protocol.TKick, Channel: "bobs", Target: "carol"})
	b.ok(&protocol.Frame{Type: protocol.TRenameChannel, Channel: "bobs", NewName: "bobs2"})
	a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "alices"})

	types := func(r *protocol.Frame) string {
		var out []string
		for _, e := range r.Events {
			out = append(out, e.Type)
		}
		return strings.Join(out, ",")
	}
	all := a.ok(&protocol.Frame{Type: protocol.TAudit})
	if got := types(all); got != "user_registered,user_registered,user_registered,channel_created,invite_created,kicked,channel_renamed,channel_created" {
		t.Fatalf("server admin's audit = %s", got)
	}
	for _, e := range all.Events {
		if strings.Contains(string(e.Data), tok) {
			t.Fatalf("token not redacted: %s", e.Data)
		}
	}
	shown := a.ok(&protocol.Frame{Type: protocol.TAudit, ShowTokens: true, EventType: "invite_created"})
	if len(shown.Events) != 1 || !strings.Contains(string(shown.Events[0].Data), tok) {
		t.Fatalf("show_tokens for a server admin = %+v", shown.Events)
	}
	// Bob administers bobs (now bobs2): he sees its events under both names, and no others.
	mine := b.ok(&protocol.Frame{Type: protocol.TAudit, ShowTokens: true})
	if got := types(mine); got != "channel_created,invite_created,kicked,channel_renamed" {
		t.Fatalf("channel admin's audit = %s", got)
	}
	if strings.Contains(string(mine.Events[1].Data), tok) {
		t.Fatal("a channel admin got a full token with show_tokens")
	}
	if r := c.ok(&protocol.Frame{Type: protocol.TAudit}); len(r.Events) != 0 {
		t.Fatalf("carol sees %s", types(r))
	}
	c.fail(&protocol.Frame{Type: protocol.TAudit, Channel: "bobs2"}, protocol.CodeUnauthorized)
	// Paging.
	p1 := a.ok(&protocol.Frame{Type: protocol.TAudit, Limit: 3})
	p2 := a.ok(&protocol.Frame{Type: protocol.TAudit, AfterSeq: u64(p1.NextSeq)})
	if !p1.More || len(p1.Events) != 3 || len(p2.Events) != 5 || p2.More {
		t.Fatalf("pages: %d (more %v), %d (more %v)", len(p1.Events), p1.More, len(p2.Events), p2.More)
	}
	if r := a.ok(&protocol.Frame{Type: protocol.TAudit, User: "bob"}); len(r.Events) != 5 {
		t.Fatalf("actor filter: %s", types(r))
	}
}
