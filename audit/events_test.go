package audit

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
)

// events returns the events f selects from d.
func events(t *testing.T, d *DataDir, f Filter) []Event {
	t.Helper()
	var out []Event
	if err := d.Events(context.Background(), f, func(e Event) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("Events(%+v): %v", f, err)
	}
	return out
}

func seqs(evs []Event) []uint64 {
	out := []uint64{}
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

func TestEventsAll(t *testing.T) {
	td := scenarioDir(t)
	evs := events(t, openDir(t, td.dir), Filter{})
	wantTargets := []string{
		"user alice (machine alice/laptop)",
		"user bob (machine bob/desk)",
		"channel ops",
		"channel secret (private)",
		"invite tok123… on secret",
		"alice/phone",
		"invite tok123… on secret by bob",
		"bob on secret",
		"channel ops → dev",
		"bob on dev",
		"invite inv456… on dev",
		"bob/desk/cli-2 from secret",
		"channel secret → unlisted",
	}
	if len(evs) != len(scenario) {
		t.Fatalf("got %d events, want %d", len(evs), len(scenario))
	}
	for i, e := range evs {
		s := scenario[i]
		want := Event{Seq: uint64(i + 1), Time: t0.Add(s.at), Actor: s.actor, Type: s.typ, Target: wantTargets[i]}
		got := e
		got.Data = nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("event %d: got %+v, want %+v", i+1, got, want)
		}
		if e.Time.Location() != time.UTC {
			t.Errorf("event %d: time %v is not UTC", i+1, e.Time)
		}
	}
	if got, want := string(evs[2].Data), `{"channel":"ops","visibility":"public","created_by":"alice"}`; got != want {
		t.Errorf("data of seq 3: got %s, want %s", got, want)
	}
}

func TestEventsFilter(t *testing.T) {
	td := scenarioDir(t)
	d := openDir(t, td.dir)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	tests := []struct {
		name string
		f    Filter
		want []uint64
	}{
		{"since inclusive", Filter{Since: at(time.Hour)}, []uint64{7, 8, 9, 10, 11, 12, 13}},
		{"until inclusive", Filter{Until: at(5 * time.Minute)}, []uint64{1, 2, 3, 4, 5, 6}},
		{"since and until", Filter{Since: at(time.Hour), Until: at(3 * time.Hour)}, []uint64{7, 8, 9, 10}},
		{"since after the end", Filter{Since: at(100 * time.Hour)}, []uint64{}},
		{"actor user", Filter{Actor: "alice"}, []uint64{1, 3, 4, 5, 6, 9, 11, 12, 13}},
		{"actor user/machine", Filter{Actor: "alice/laptop"}, []uint64{1, 3, 4, 5, 9, 11, 12, 13}},
		{"actor full path", Filter{Actor: "alice/phone/cli-9"}, []uint64{6}},
		{"actor server", Filter{Actor: "server"}, []uint64{10}},
		{"actor bob", Filter{Actor: "bob"}, []uint64{2, 7, 8}},
		{"actor is not a prefix match", Filter{Actor: "al"}, []uint64{}},
		{"channel renamed away", Filter{Channel: "ops"}, []uint64{3, 9}},
		{"channel renamed to", Filter{Channel: "dev"}, []uint64{9, 10, 11}},
		{"channel private", Filter{Channel: "secret"}, []uint64{4, 5, 7, 8, 12, 13}},
		{"channel unknown", Filter{Channel: "nope"}, []uint64{}},
		{"type", Filter{Type: "invite_created"}, []uint64{5, 11}},
		{"type list", Filter{Type: "acl_added, banned"}, []uint64{8, 10}},
		{"type unknown", Filter{Type: "nope"}, []uint64{}},
		{"combined", Filter{Actor: "alice", Channel: "secret", Since: at(time.Minute)}, []uint64{4, 5, 12, 13}},
		{"show tokens changes nothing selected", Filter{ShowTokens: true, Type: "invite_redeemed"}, []uint64{7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := seqs(events(t, d, tt.f)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got seqs %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEventsTokens(t *testing.T) {
	td := scenarioDir(t)
	d := openDir(t, td.dir)
	for _, e := range events(t, d, Filter{}) {
		line := fmt.Sprintf("%s %s", e.Target, e.Data)
		if strings.Contains(line, "SECRET") {
			t.Errorf("seq %d shows a token: %s", e.Seq, line)
		}
	}
	hidden := events(t, d, Filter{Type: "invite_created"})
	if got, want := string(hidden[0].Data), `{"channel":"secret","token":"tok123…","uses":2}`; got != want {
		t.Errorf("hidden data: got %s, want %s", got, want)
	}
	shown := events(t, d, Filter{Type: "invite_created,invite_redeemed", ShowTokens: true})
	if got, want := shown[0].Target, "invite "+testToken+" on secret"; got != want {
		t.Errorf("shown target: got %q, want %q", got, want)
	}
	if got, want := shown[1].Target, "invite "+testToken+" on secret by bob"; got != want {
		t.Errorf("shown target: got %q, want %q", got, want)
	}
	if got, want := string(shown[0].Data), `{"channel":"secret","token":"`+testToken+`","uses":2}`; got != want {
		t.Errorf("shown data: got %s, want %s", got, want)
	}
}

func TestEventData(t *testing.T) {
	tests := []struct {
		name, data string
		show       bool
		want       string
	}{
		{"compacted", `{ "channel" : "ops" }`, false, `{"channel":"ops"}`},
		{"token hidden", `{"token":"abcdefghijklmn","channel":"c"}`, false, `{"channel":"c","token":"abcdef…"}`},
		{"token in any case", `{"Token":"abcdefghijklmn"}`, false, `{"Token":"abcdef…"}`},
		{"token shown", `{"token":"abcdefghijklmn"}`, true, `{"token":"abcdefghijklmn"}`},
		{"duplicate token keys", `{"token":"abcdefghijklmn","token":"zyxwvutsrqponm"}`, false, `{"token":"zyxwvu…"}`},
		{"not an object", `[1,2]`, false, `[1,2]`},
		{"not json", "a\x00b", false, `"a\u0000b"`},
		{"html kept", `{"token":"<&>defghijklmn"}`, false, `{"token":"<&>def…"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(eventData([]byte(tt.data), tt.show)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestTargetUnknownType(t *testing.T) {
	b := projections.DecodeFields([]byte(`{"channel":"ops","user":"bob","extra":1}`))
	if got, want := target("from_the_future", b, false), "user bob, channel ops"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	b = projections.DecodeFields([]byte(`{"channel":7,"user":"bob"}`))
	if got, want := target("acl_added", b, false), "bob on "; got != want {
		t.Errorf("mistyped field: got %q, want %q", got, want)
	}
}

func TestEventsCallbackError(t *testing.T) {
	td := scenarioDir(t)
	d := openDir(t, td.dir)
	boom := errors.New("boom")
	n := 0
	err := d.Events(context.Background(), Filter{}, func(Event) error {
		if n++; n == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 3 {
		t.Errorf("got %v after %d events, want boom after 3", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Events(ctx, Filter{}, func(Event) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v, want context.Canceled", err)
	}
}

func TestEventsStopAtBreak(t *testing.T) {
	td := scenarioDir(t)
	seg, off, n := recordAt(t, td.dir, 7)
	flipByte(t, seg, off+n/2)
	var got []Event
	err := openDir(t, td.dir).Events(context.Background(), Filter{}, func(e Event) error {
		got = append(got, e)
		return nil
	})
	var se *eventlog.SegmentError
	if !errors.As(err, &se) || se.Seq != 7 || !errors.Is(err, eventlog.ErrChecksum) {
		t.Fatalf("got %v, want a checksum SegmentError at seq 7", err)
	}
	if len(got) != 6 {
		t.Errorf("got %d events before the break, want 6", len(got))
	}
}
