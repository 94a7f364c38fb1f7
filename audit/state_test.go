package audit

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/protocol"
)

// summary flattens a dump for comparisons: channel → visibility, ACL,
// bans and invite tokens.
type chanSummary struct {
	Vis     protocol.Visibility
	ACL     []string
	Bans    []string
	Invites []string
}

func summarise(d projections.StateDump) (users map[string][]string, chans map[string]chanSummary) {
	users, chans = map[string][]string{}, map[string]chanSummary{}
	for _, u := range d.Users {
		ms := []string{}
		for _, m := range u.Machines {
			ms = append(ms, m.Name)
		}
		users[u.Name] = ms
	}
	for _, c := range d.Channels {
		invs := []string{}
		for _, inv := range c.Invites {
			invs = append(invs, inv.Token)
		}
		chans[c.Name] = chanSummary{c.Visibility, c.ACL, c.Bans, invs}
	}
	return users, chans
}

func TestStateAt(t *testing.T) {
	td := scenarioDir(t)
	d := openDir(t, td.dir)
	none := []string{}
	tests := []struct {
		name    string
		at      time.Duration
		show    bool
		seq     uint64
		users   map[string][]string
		chans   map[string]chanSummary
		invUses map[string]int64 // token → remaining uses, for invites with a limit
	}{
		{name: "before the first event", at: -time.Second, seq: 0,
			users: map[string][]string{}, chans: map[string]chanSummary{}},
		{name: "after the setup", at: 5 * time.Minute, seq: 6,
			users: map[string][]string{"alice": {"laptop", "phone"}, "bob": {"desk"}},
			chans: map[string]chanSummary{
				"ops":    {"public", []string{"alice"}, none, none},
				"secret": {"private", []string{"alice"}, none, []string{"tok123…"}},
			},
			invUses: map[string]int64{"tok123…": 2}},
		{name: "tokens shown", at: 5 * time.Minute, show: true, seq: 6,
			users: map[string][]string{"alice": {"laptop", "phone"}, "bob": {"desk"}},
			chans: map[string]chanSummary{
				"ops":    {"public", []string{"alice"}, none, none},
				"secret": {"private", []string{"alice"}, none, []string{testToken}},
			}},
		{name: "after the rename", at: 2 * time.Hour, seq: 9,
			users: map[string][]string{"alice": {"laptop", "phone"}, "bob": {"desk"}},
			chans: map[string]chanSummary{
				"dev":    {"public", []string{"alice"}, none, none},
				"secret": {"private", []string{"alice", "bob"}, none, []string{"tok123…"}},
			},
			invUses: map[string]int64{"tok123…": 1}},
		{name: "invite live", at: 4*time.Hour + 30*time.Minute, seq: 11,
			users: map[string][]string{"alice": {"laptop", "phone"}, "bob": {"desk"}},
			chans: map[string]chanSummary{
				"dev":    {"public", []string{"alice"}, []string{"bob"}, []string{"inv456…"}},
				"secret": {"private", []string{"alice", "bob"}, none, []string{"tok123…"}},
			}},
		{name: "invite expired at its ms", at: 5 * time.Hour, seq: 11,
			users: map[string][]string{"alice": {"laptop", "phone"}, "bob": {"desk"}},
			chans: map[string]chanSummary{
				"dev":    {"public", []string{"alice"}, []string{"bob"}, none},
				"secret": {"private", []string{"alice", "bob"}, none, []string{"tok123…"}},
			}},
		{name: "the end", at: 1000 * time.Hour, seq: 13,
			users: map[string][]string{"alice": {"laptop", "phone"}, "bob": {"desk"}},
			chans: map[string]chanSummary{
				"dev":    {"public", []string{"alice"}, []string{"bob"}, none},
				"secret": {"unlisted", []string{"alice", "bob"}, none, []string{"tok123…"}},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dump, seq, err := d.StateAt(context.Background(), t0.Add(tt.at), tt.show)
			if err != nil {
				t.Fatal(err)
			}
			if seq != tt.seq || dump.LastSeq != tt.seq {
				t.Errorf("got seq %d (dump %d), want %d", seq, dump.LastSeq, tt.seq)
			}
			users, chans := summarise(dump)
			if !reflect.DeepEqual(users, tt.users) {
				t.Errorf("users: got %v, want %v", users, tt.users)
			}
			if !reflect.DeepEqual(chans, tt.chans) {
				t.Errorf("channels: got %+v, want %+v", chans, tt.chans)
			}
			for _, c := range dump.Channels {
				for _, inv := range c.Invites {
					if want, ok := tt.invUses[inv.Token]; ok && (inv.Uses == nil || *inv.Uses != want) {
						t.Errorf("invite %s: got uses %v, want %d", inv.Token, inv.Uses, want)
					}
				}
			}
		})
	}
}

// TestStateAtClockStepBack: replay stops at the first record after the
// time, even if a later record carries an earlier time.
func TestStateAtClockStepBack(t *testing.T) {
	td := newTestDir(t)
	td.add(scenario[0], testEvent{10 * time.Minute, "bob/desk/cli-2", projections.EvUserRegistered,
		projections.RegisterData{User: "bob", Machine: "desk", Pubkey: testKey(2)}})
	td.add(testEvent{5 * time.Minute, "alice/laptop/cli-1", projections.EvChannelCreated,
		projections.ChannelData{Channel: "ops", CreatedBy: "alice"}})
	td.close()
	dump, seq, err := openDir(t, td.dir).StateAt(context.Background(), t0.Add(6*time.Minute), false)
	if err != nil {
		t.Fatal(err)
	}
	if seq != 1 || len(dump.Users) != 1 || len(dump.Channels) != 0 {
		t.Errorf("got seq %d, %d users, %d channels; want seq 1, 1 user, 0 channels", seq, len(dump.Users), len(dump.Channels))
	}
}

func TestStateAtInvalidEvent(t *testing.T) {
	td := newTestDir(t)
	td.add(scenario[0])
	if _, err := td.log.Append([]eventlog.Entry{{TimeMs: t0.UnixMilli(), Actor: "server", Type: projections.EvACLAdded,
		Data: []byte(`{"channel":"nope","user":"alice"}`)}}); err != nil {
		t.Fatal(err)
	}
	td.close()
	_, _, err := openDir(t, td.dir).StateAt(context.Background(), t0.Add(time.Hour), false)
	if !errors.Is(err, projections.ErrInvalidEvent) {
		t.Errorf("got %v, want ErrInvalidEvent", err)
	}
}
