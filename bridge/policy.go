package bridge

import (
	"fmt"
	"sync"
	"time"

	"github.com/conclave/conclave/identity"
)

// budgetWindow is the span the emit budget counts over.
const budgetWindow = time.Minute

// policy is the bridge's live permission policy: a copy of config.toml's
// default and overrides that set_perm and join_channel{perm} change in
// memory only. Safe for concurrent use.
type policy struct {
	// mu guards cfg.
	mu  sync.Mutex
	cfg identity.Config // only DefaultPermission and Overrides are used
}

func newPolicy(cfg *identity.Config) *policy {
	p := &policy{cfg: identity.Config{DefaultPermission: cfg.DefaultPermission}}
	p.cfg.Overrides = append(p.cfg.Overrides, cfg.Overrides...)
	return p
}

// channel returns the level of (server, channel).
func (p *policy) channel(server, channel string) identity.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg.Resolve(server, channel, false)
}

// whisper returns the level of the server's whispers.
func (p *policy) whisper(server string) identity.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg.Resolve(server, "", true)
}

// set sets the level of (server, channel), or of the server's whispers.
func (p *policy) set(server, channel string, whisper bool, l identity.Level) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg.SetOverride(server, channel, whisper, l)
}

// setDefault sets the level of every scope without an override.
func (p *policy) setDefault(l identity.Level) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg.DefaultPermission = l
}

// rename moves a channel override to the channel's new name, unless the
// new name has one of its own.
func (p *policy) rename(server, from, to string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var old *identity.Override
	for i := range p.cfg.Overrides {
		o := &p.cfg.Overrides[i]
		if o.Server != server || o.Whisper {
			continue
		}
		switch o.Channel {
		case to:
			return
		case from:
			old = o
		}
	}
	if old != nil {
		p.cfg.SetOverride(server, to, false, old.Level)
	}
}

// budget is the local emit budget (SPEC.md §7): at most limit messages
// per scope (a channel, or one whisper target) per server per minute, a
// loop breaker for agents answering each other. Safe for concurrent use.
type budget struct {
	limit int
	now   func() time.Time

	// mu guards sent.
	mu   sync.Mutex
	sent map[budgetKey][]time.Time // send times within the window, oldest first
}

type budgetKey struct{ server, scope string }

func newBudget(limit int, now func() time.Time) *budget {
	if limit < 1 {
		limit = identity.DefaultEmitBudget
	}
	return &budget{limit: limit, now: now, sent: make(map[budgetKey][]time.Time)}
}

// take records one message to scope on server, or returns an error saying
// how long to wait if the budget of the last minute is spent. A message
// the server then refuses is given back with refund.
func (b *budget) take(server, scope string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	k := budgetKey{server, scope}
	times := b.sent[k]
	cut := 0
	for cut < len(times) && now.Sub(times[cut]) >= budgetWindow {
		cut++
	}
	times = times[cut:]
	if len(times) >= b.limit {
		b.sent[k] = times
		wait := budgetWindow - now.Sub(times[0])
		return fmt.Errorf("emit budget spent: %d messages to %s on %s in the last minute (emit_budget = %d in config.toml); "+
			"this local limit breaks reply loops between agents — wait %s before sending again",
			len(times), scope, code(server), b.limit, wait.Round(time.Second))
	}
	b.sent[k] = append(times, now)
	return nil
}

// spent reports whether the budget of scope on server is spent for the
// last minute: a message to it now would be refused.
func (b *budget) spent(server, scope string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	n := 0
	for _, t := range b.sent[budgetKey{server, scope}] {
		if now.Sub(t) < budgetWindow {
			n++
		}
	}
	return n >= b.limit
}

// refund forgets the latest message recorded for scope on server: the
// server refused it, so nothing was emitted.
func (b *budget) refund(server, scope string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := budgetKey{server, scope}
	if times := b.sent[k]; len(times) > 0 {
		b.sent[k] = times[:len(times)-1]
	}
}
