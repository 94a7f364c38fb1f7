package projections

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/conclave/conclave/protocol"
)

func TestApproverDecideAndReplay(t *testing.T) {
	e := newEnv(t, "alice", "bob")
	on := func(machine string) Actor { return Actor{User: "alice", Path: "alice/" + machine + "/cli-1"} }
	e.ok(on("m"), MachineAdd{Machine: "phone", Pubkey: key(10)})
	e.ok(on("m"), MachineAdd{Machine: "desk", Pubkey: key(11)})

	bridge := on("m")
	bridge.Bridge = true
	e.refused(bridge, ApproverAdd{Machine: "phone"}, protocol.CodeUnauthorized, "not authorized: a bridge session cannot change approver machines")
	e.refused(on("m"), ApproverAdd{Machine: "nosuch"}, protocol.CodeNotFound, `no machine named "nosuch"`)
	e.refused(on("m"), ApproverAdd{Machine: ""}, protocol.CodeMalformed, "")
	if evs := e.ok(on("m"), ApproverAdd{Machine: "phone"}); len(evs) != 1 || evs[0].Type != EvApproverAdded {
		t.Fatalf("bootstrap events = %+v", evs)
	}
	e.refused(on("desk"), ApproverAdd{Machine: "desk"}, protocol.CodeUnauthorized,
		"not authorized: only a session on an approver machine (phone) may change the list; this is desk")
	if evs := e.ok(on("phone"), ApproverAdd{Machine: "phone"}); len(evs) != 0 {
		t.Fatalf("adding an approver twice wrote %+v", evs)
	}
	e.ok(on("phone"), ApproverAdd{Machine: "desk"})
	if got := e.s.Approvers("alice"); !reflect.DeepEqual(got, []string{"desk", "phone"}) {
		t.Fatalf("approvers = %v", got)
	}
	if e.s.IsApprover("bob", "m") || len(e.s.Approvers("bob")) != 0 {
		t.Fatal("bob has approvers")
	}
	snap := e.snapshot()
	e.ok(on("m"), MachineRemove{Machine: "desk"})
	if got := e.s.Approvers("alice"); !reflect.DeepEqual(got, []string{"phone"}) {
		t.Fatalf("approvers after removing desk = %v", got)
	}

	// The snapshot round-trips the list and the spent bootstrap.
	back, err := UnmarshalSnapshot(snap)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Approvers("alice"); !reflect.DeepEqual(got, []string{"desk", "phone"}) {
		t.Fatalf("approvers from the snapshot = %v", got)
	}
	e.ok(on("phone"), ApproverRemove{Machine: "phone"})
	// Replay of every event gives the same state as the live one,
	// including the spent bootstrap.
	r := New()
	for i, ev := range e.events {
		if err := r.Apply(uint64(i+1), ev); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(r.Dump(), e.s.Dump()) {
		t.Fatalf("replay differs:\n%+v\n%+v", r.Dump(), e.s.Dump())
	}
	if _, perr := r.Decide(on("m"), ApproverAdd{Machine: "m"}, e.now); perr == nil {
		t.Fatal("the bootstrap came back after the list was emptied")
	}
	back2, err := UnmarshalSnapshot(e.snapshot())
	if err != nil {
		t.Fatal(err)
	}
	if _, perr := back2.Decide(on("m"), ApproverAdd{Machine: "m"}, e.now); perr == nil {
		t.Fatal("the bootstrap came back after a snapshot round trip")
	}
}

func TestApplyRejectsBadApproverEvents(t *testing.T) {
	e := newEnv(t, "alice")
	for _, ev := range []Event{
		{Type: EvApproverAdded, Data: []byte(`{"user":"bob","machine":"m"}`)},
		{Type: EvApproverAdded, Data: []byte(`{"user":"alice","machine":"x"}`)},
		{Type: EvApproverRemoved, Data: []byte(`{"user":"alice","machine":"m","pubkey":"AAAA"}`)},
		{Type: EvApproverAdded, Data: []byte(`{"user":"alice","machine":"m","extra":1}`)},
	} {
		if err := e.s.Apply(99, ev); err == nil {
			t.Errorf("Apply(%s %s) succeeded", ev.Type, ev.Data)
		}
	}
}

// A snapshot of schema 1 (before approver machines) still loads, with no
// approvers and the bootstrap open.
func TestSchema1SnapshotLoads(t *testing.T) {
	s, err := UnmarshalSnapshot(gobSnap(t, `{"schema":1,"state":{"users":[{"name":"a","machines":[{"name":"m","pubkey":`+jsonKey(1)+`}]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Approvers("a")) != 0 {
		t.Fatal("approvers from a schema 1 snapshot")
	}
	if _, perr := s.Decide(Actor{User: "a", Path: "a/m/s"}, ApproverAdd{Machine: "m"}, t0); perr != nil {
		t.Fatalf("bootstrap after a schema 1 snapshot: %v", perr)
	}
}

func jsonKey(n byte) string { b, _ := json.Marshal([]byte(key(n))); return string(b) }
