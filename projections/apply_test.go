package projections

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/conclave/conclave/protocol"
)

func ev(typ string, data any) Event {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	return Event{Type: typ, Data: b, Actor: "alice/m/s", TimeMs: t0.UnixMilli()}
}

func TestApplyRefusesContradictions(t *testing.T) {
	base := func() *State {
		s := New()
		for i, e := range []Event{
			ev(EvUserRegistered, RegisterData{User: "alice", Machine: "m", Pubkey: key(1)}),
			ev(EvChannelCreated, ChannelData{Channel: "ops", CreatedBy: "alice"}),
			ev(EvInviteCreated, InviteData{Channel: "ops", Token: "tok", Uses: i64(1)}),
		} {
			if err := s.Apply(uint64(i+1), e); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	tests := []struct {
		name string
		ev   Event
	}{
		{"unknown type", Event{Type: "launch", Data: []byte(`{}`)}},
		{"bad json", Event{Type: EvUserRegistered, Data: []byte(`{"user":`)}},
		{"unknown field", Event{Type: EvUserRemoved, Data: []byte(`{"user":"alice","x":1}`)}},
		{"trailing data", Event{Type: EvUserRemoved, Data: []byte(`{"user":"alice"} {}`)}},
		{"second registration", ev(EvUserRegistered, RegisterData{User: "alice", Machine: "m", Pubkey: key(2)})},
		{"key reused", ev(EvUserRegistered, RegisterData{User: "bob", Machine: "m", Pubkey: key(1)})},
		{"short key", ev(EvUserRegistered, RegisterData{User: "bob", Machine: "m", Pubkey: []byte{1}})},
		{"bad name", ev(EvUserRegistered, RegisterData{User: "a/b", Machine: "m", Pubkey: key(2)})},
		{"machine for nobody", ev(EvMachineAdded, MachineData{User: "bob", Machine: "m", Pubkey: key(2)})},
		{"machine twice", ev(EvMachineAdded, MachineData{User: "alice", Machine: "m", Pubkey: key(2)})},
		{"remove unknown machine", ev(EvMachineRemoved, MachineData{User: "alice", Machine: "x"})},
		{"remove unknown user", ev(EvUserRemoved, UserData{User: "bob"})},
		{"channel twice", ev(EvChannelCreated, ChannelData{Channel: "ops", CreatedBy: "alice"})},
		{"channel by nobody", ev(EvChannelCreated, ChannelData{Channel: "x", CreatedBy: "bob"})},
		{"channel bad visibility", ev(EvChannelCreated, ChannelData{Channel: "x", CreatedBy: "alice", Visibility: "secret"})},
		{"delete unknown", ev(EvChannelDeleted, ChannelData{Channel: "x"})},
		{"rename onto existing", ev(EvChannelRenamed, RenameData{Channel: "ops", NewName: "ops"})},
		{"rename unknown", ev(EvChannelRenamed, RenameData{Channel: "x", NewName: "y"})},
		{"visibility empty", ev(EvVisibilityChanged, ChannelData{Channel: "ops"})},
		{"acl add unknown user", ev(EvACLAdded, MemberData{Channel: "ops", User: "bob"})},
		{"ban in unknown channel", ev(EvBanned, MemberData{Channel: "x", User: "alice"})},
		{"invite twice", ev(EvInviteCreated, InviteData{Channel: "ops", Token: "tok"})},
		{"invite zero uses", ev(EvInviteCreated, InviteData{Channel: "ops", Token: "t2", Uses: i64(0)})},
		{"redeem unknown", ev(EvInviteRedeemed, RedeemData{Channel: "ops", Token: "nope", User: "alice"})},
		{"redeem other channel", ev(EvInviteRedeemed, RedeemData{Channel: "x", Token: "tok", User: "alice"})},
		{"revoke unknown", ev(EvInviteRevoked, TokenData{Channel: "ops", Token: "nope"})},
		{"kick unknown channel", ev(EvKicked, KickData{Channel: "x", Target: "alice"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base()
			before, _ := s.MarshalSnapshot()
			err := s.Apply(9, tt.ev)
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("got %v, want ErrInvalidEvent", err)
			}
			after, _ := s.MarshalSnapshot()
			if string(before) != string(after) || s.LastSeq() != 3 {
				t.Fatalf("failed Apply changed the state")
			}
		})
	}
}

func TestApplyNeverLogsTokens(t *testing.T) {
	s := New()
	err := s.Apply(1, ev(EvInviteRevoked, TokenData{Channel: "ops", Token: "sekrit-token"}))
	if err == nil || strings.Contains(err.Error(), "sekrit") {
		t.Fatalf("got %v, want an error not naming the token", err)
	}
}

// scenario builds a state exercising every event type and returns it with
// its events.
func scenario(t testing.TB) *env {
	t.Helper()
	e := newEnv(t, "alice", "bob", "carol", "root")
	e.ok(as("alice"), MachineAdd{Machine: "laptop", Pubkey: key(40)})
	e.ok(as("bob"), MachineAdd{Machine: "spare", Pubkey: key(41)})
	e.ok(as("bob"), MachineRemove{Machine: "spare"})
	e.ok(as("alice"), CreateChannel{Channel: "pub"})
	e.ok(as("alice"), CreateChannel{Channel: "priv", Visibility: protocol.Private})
	e.ok(as("carol"), CreateChannel{Channel: "carols"})
	e.ok(as("alice"), InviteCreate{Channel: "priv", Token: "t1", Uses: i64(2), ExpiresAtMs: i64(t0.UnixMilli() + 5000)})
	e.ok(as("alice"), InviteCreate{Channel: "priv", Token: "t2"})
	e.ok(as("alice"), InviteCreate{Channel: "priv", Token: "t3"})
	e.ok(as("bob"), Join{Channel: "priv", Token: "t1"})
	e.ok(as("alice"), InviteRevoke{Token: "t3"})
	e.ok(as("alice"), ACLAdd{Channel: "pub", User: "carol"})
	e.ok(as("alice"), Ban{Channel: "pub", User: "bob"})
	e.ok(as("alice"), Ban{Channel: "pub", User: "carol"})
	e.ok(as("alice"), Unban{Channel: "pub", User: "carol"})
	e.ok(as("alice"), Kick{Channel: "pub", Target: "carol/m/s"})
	e.ok(as("alice"), SetVisibility{Channel: "pub", Visibility: protocol.Unlisted})
	e.ok(as("alice"), RenameChannel{Channel: "pub", NewName: "hall"})
	e.ok(as("alice"), ACLRemove{Channel: "priv", User: "bob"})
	e.ok(as("carol"), ACLAdd{Channel: "carols", User: "bob"})
	e.ok(admin("root"), UserRemove{User: "carol"})
	e.ok(as("root"), CreateChannel{Channel: "tmp"})
	e.ok(as("root"), DeleteChannel{Channel: "tmp"})
	return e
}

func TestReplayDeterminism(t *testing.T) {
	e := scenario(t)
	want := e.snapshot()
	for range 3 {
		s := New()
		for i, ev := range e.events {
			if err := s.Apply(uint64(i+1), ev); err != nil {
				t.Fatalf("replay event %d: %v", i+1, err)
			}
		}
		got, err := s.MarshalSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("replay snapshot differs:\ngot  %s\nwant %s", got, want)
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	e := scenario(t)
	b := e.snapshot()
	s, err := UnmarshalSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := s.MarshalSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(b2) {
		t.Fatalf("round trip differs:\ngot  %s\nwant %s", b2, b)
	}
	if s.LastSeq() != uint64(len(e.events)) {
		t.Fatalf("LastSeq = %d, want %d", s.LastSeq(), len(e.events))
	}
	queries := []struct {
		name string
		q    func(*State) any
	}{
		{"users", func(s *State) any { return s.Users() }},
		{"machines", func(s *State) any { return [][]Machine{s.Machines("alice"), s.Machines("bob")} }},
		{"channels", func(s *State) any { return s.Channels() }},
		{"acl", func(s *State) any { return [][]string{s.ACL("priv"), s.ACL("hall")} }},
		{"bans", func(s *State) any { return s.Bans("hall") }},
		{"invites", func(s *State) any { return s.Invites("priv") }},
		{"list", func(s *State) any { return s.ListChannels(as("bob")) }},
		{"key", func(s *State) any { u, m, ok := s.UserByKey(key(40)); return []any{u, m, ok} }},
		{"dump", func(s *State) any { return s.Dump() }},
	}
	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			if got, want := q.q(s), q.q(e.s); !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
	// The restored state keeps deciding like the original.
	e.s = s
	e.ok(as("root"), Join{Channel: "priv", Token: "t1"})
	e.refused(as("bob"), Join{Channel: "hall"}, protocol.CodeUnauthorized, `you are banned from channel "hall"`)
}

func TestUnmarshalSnapshotRejects(t *testing.T) {
	k := func(n byte) string { b, _ := json.Marshal([]byte(key(n))); return string(b) }
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ``},
		{"not json", `hello`},
		{"schema", `{"schema":3,"state":{}}`},
		{"dup user", `{"schema":2,"state":{"users":[{"name":"a"},{"name":"a"}]}}`},
		{"bad user", `{"schema":2,"state":{"users":[{"name":""}]}}`},
		{"short key", `{"schema":2,"state":{"users":[{"name":"a","machines":[{"name":"m","pubkey":"AAAA"}]}]}}`},
		{"dup key", `{"schema":2,"state":{"users":[{"name":"a","machines":[{"name":"m","pubkey":` + k(1) + `},{"name":"n","pubkey":` + k(1) + `}]}]}}`},
		{"orphan channel", `{"schema":2,"state":{"channels":[{"name":"c","visibility":"public","created_by":"zed"}]}}`},
		{"bad visibility", `{"schema":2,"state":{"users":[{"name":"a"}],"channels":[{"name":"c","visibility":"x","created_by":"a"}]}}`},
		{"acl unknown user", `{"schema":2,"state":{"users":[{"name":"a"}],"channels":[{"name":"c","visibility":"public","created_by":"a","acl":["zed"]}]}}`},
		{"dup token", `{"schema":2,"state":{"users":[{"name":"a"}],"channels":[{"name":"c","visibility":"public","created_by":"a","invites":[{"token":"t"},{"token":"t"}]}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := UnmarshalSnapshot(gobSnap(t, tt.in)); err == nil {
				t.Fatalf("got state %+v, want an error", s.Dump())
			}
		})
	}
	if _, err := UnmarshalSnapshot(append(gobSnap(t, `{"schema":2,"state":{}}`), 0)); err == nil {
		t.Fatal("trailing data accepted")
	}
	if _, err := UnmarshalSnapshot([]byte(`{"schema":2,"state":{}}`)); err == nil {
		t.Fatal("garbage accepted")
	}
	if _, err := UnmarshalSnapshot(gobSnap(t, `{"schema":3,"state":{}}`)); !errors.Is(err, ErrSchema) {
		t.Fatalf("got %v, want ErrSchema", err)
	}
}

func TestDumpShape(t *testing.T) {
	e := scenario(t)
	d := e.s.Dump()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back StateDump
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, d) {
		t.Fatalf("dump does not survive JSON:\ngot  %+v\nwant %+v", back, d)
	}
	var names []string
	for _, c := range d.Channels {
		names = append(names, c.Name)
	}
	if want := []string{"hall", "priv"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("channels = %v, want %v", names, want)
	}
	if got := d.Channels[1].Invites; len(got) != 2 || got[0].Token != "t1" || *got[0].Uses != 1 {
		t.Fatalf("priv invites = %+v, want t1 (1 use left) and t2", got)
	}
}

// gobSnap encodes a snapshot written as JSON for readability.
func gobSnap(t *testing.T, js string) []byte {
	t.Helper()
	var snap snapshot
	if err := json.Unmarshal([]byte(js), &snap); err != nil {
		return []byte(js) // not a snapshot at all: pass the bytes as they are
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(snap); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
