package projections

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/conclave/conclave/protocol"
)

var t0 = time.UnixMilli(1_700_000_000_000)

// key returns a deterministic public key numbered n.
func key(n byte) ed25519.PublicKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = n
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
}

func as(user string) Actor { return Actor{User: user, Path: user + "/m/s"} }

func admin(user string) Actor { a := as(user); a.ServerAdmin = true; return a }

func i64(v int64) *int64 { return &v }

// env is a State plus the events applied to it, for replay checks.
type env struct {
	t      testing.TB
	s      *State
	events []Event
	now    time.Time
	keyN   byte
}

func newEnv(t testing.TB, users ...string) *env {
	t.Helper()
	e := &env{t: t, s: New(), now: t0}
	for _, u := range users {
		e.register(u)
	}
	return e
}

func (e *env) register(user string) {
	e.t.Helper()
	e.keyN++
	e.ok(Actor{User: user, Path: user + "/m/s"}, Register{User: user, Machine: "m", Pubkey: key(e.keyN)})
}

// do decides cmd and applies its events.
func (e *env) do(a Actor, cmd Command) ([]Event, *protocol.Error) {
	e.t.Helper()
	evs, perr := e.s.Decide(a, cmd, e.now)
	if perr != nil {
		if len(evs) != 0 {
			e.t.Fatalf("Decide(%#v) returned events with error %v", cmd, perr)
		}
		return nil, perr
	}
	for _, ev := range evs {
		seq := uint64(len(e.events) + 1)
		if err := e.s.Apply(seq, ev); err != nil {
			e.t.Fatalf("Apply(%s) after Decide(%#v): %v", ev.Type, cmd, err)
		}
		e.events = append(e.events, ev)
	}
	return evs, nil
}

func (e *env) ok(a Actor, cmd Command) []Event {
	e.t.Helper()
	evs, perr := e.do(a, cmd)
	if perr != nil {
		e.t.Fatalf("Decide(%#v) = %v, want success", cmd, perr)
	}
	return evs
}

func (e *env) refused(a Actor, cmd Command, code protocol.Code, msg string) {
	e.t.Helper()
	_, perr := e.do(a, cmd)
	if perr == nil {
		e.t.Fatalf("Decide(%#v) succeeded, want %s %q", cmd, code, msg)
	}
	if perr.Code != code || (msg != "" && perr.Message != msg) {
		e.t.Fatalf("Decide(%#v) = %s %q, want %s %q", cmd, perr.Code, perr.Message, code, msg)
	}
}

func (e *env) snapshot() []byte {
	e.t.Helper()
	b, err := e.s.MarshalSnapshot()
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}
