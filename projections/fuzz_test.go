package projections

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/conclave/conclave/protocol"
)

// decodeEvents splits a fuzz input into events: one per line, "type\tjson".
func decodeEvents(b []byte) []Event {
	var out []Event
	for i, line := range bytes.Split(b, []byte("\n")) {
		typ, data, _ := bytes.Cut(line, []byte("\t"))
		out = append(out, Event{Type: string(typ), Data: data, Actor: "alice/m/s", TimeMs: int64(i)})
	}
	return out
}

// encodeEvents is the inverse of decodeEvents, for seeds.
func encodeEvents(evs []Event) []byte {
	var lines []string
	for _, e := range evs {
		lines = append(lines, e.Type+"\t"+string(e.Data))
	}
	return []byte(strings.Join(lines, "\n"))
}

func replay(evs []Event) *State {
	s := New()
	for i, e := range evs {
		_ = s.Apply(uint64(i+1), e) // a refused event leaves the state as it was
	}
	return s
}

func FuzzReplay(f *testing.F) {
	f.Add(encodeEvents(scenario(f).events))
	f.Add([]byte("user_registered\t{\"user\":\"a\",\"machine\":\"m\",\"pubkey\":\"" + b64(key(1)) + "\"}\n" +
		"channel_created\t{\"channel\":\"c\",\"visibility\":\"private\",\"created_by\":\"a\"}\n" +
		"invite_created\t{\"channel\":\"c\",\"token\":\"t\",\"uses\":1}\n" +
		"invite_redeemed\t{\"channel\":\"c\",\"token\":\"t\",\"user\":\"a\"}\n" +
		"invite_redeemed\t{\"channel\":\"c\",\"token\":\"t\",\"user\":\"a\"}\n" +
		"user_removed\t{\"user\":\"a\"}"))
	f.Add([]byte("kicked\t{}\nbogus\t[\n\t\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs := decodeEvents(b)
		s1, s2 := replay(evs), replay(evs)
		b1, err := s1.MarshalSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		b2, err := s2.MarshalSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("replay is not deterministic:\n%s\n%s", b1, b2)
		}
		// Whatever Apply accepted keeps the snapshot's invariants.
		s3, err := UnmarshalSnapshot(b1)
		if err != nil {
			t.Fatalf("snapshot of a replayed state does not load: %v\n%s", err, b1)
		}
		if b3, _ := s3.MarshalSnapshot(); !bytes.Equal(b1, b3) {
			t.Fatalf("snapshot round trip differs:\n%s\n%s", b1, b3)
		}
		// Decide never panics on such a state.
		for _, ch := range s1.Channels() {
			for _, a := range []Actor{as(ch.CreatedBy), as("zed"), {Path: "server", ServerAdmin: true}} {
				for _, cmd := range []Command{Join{Channel: ch.Name, Token: "t"}, DeleteChannel{Channel: ch.Name},
					Ban{Channel: ch.Name, User: "a"}, SetVisibility{Channel: ch.Name, Visibility: protocol.Public}} {
					s1.Decide(a, cmd, t0)
				}
			}
		}
	})
}

func b64(b []byte) string {
	s, _ := json.Marshal(b)
	return strings.Trim(string(s), `"`)
}

func FuzzUnmarshalSnapshot(f *testing.F) {
	snap, _ := scenario(f).s.MarshalSnapshot()
	f.Add(snap)
	empty, _ := New().MarshalSnapshot()
	f.Add(empty)
	f.Add([]byte(`{"schema":2,"state":{"users":[{"name":"a","machines":[{"name":"m","pubkey":null}]}]}}`))
	f.Add([]byte(`{"schema":2,"state":{"channels":[{"name":"c","acl":null,"invites":[{"token":"","uses":-1}]}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := UnmarshalSnapshot(b)
		if err != nil {
			return
		}
		b1, err := s.MarshalSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		s2, err := UnmarshalSnapshot(b1)
		if err != nil {
			t.Fatalf("re-encoded snapshot does not load: %v", err)
		}
		if b2, _ := s2.MarshalSnapshot(); !bytes.Equal(b1, b2) {
			t.Fatalf("snapshot is not stable:\n%s\n%s", b1, b2)
		}
	})
}
