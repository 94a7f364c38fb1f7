package bridge

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/conclave/conclave/identity"
)

// Inbox bounds.
const (
	// DefaultInboxBytes bounds what an inbox keeps unread.
	DefaultInboxBytes = 256 << 10
	// entryMax is the most bytes one rendered entry keeps: a longer body
	// is cut (catch_up shows it whole), so that every entry fits into one
	// hook delivery.
	entryMax = 6000
	// hookMax bounds the messages of one hook delivery; Claude Code cuts
	// hook context longer than about 10 000 characters.
	hookMax = 8000
	// readMax bounds one read_inbox or wait_inbox result, under Claude
	// Code's 40 000-character limit on tool results.
	readMax = 30000
	// seenMax is how many delivered keys the inbox remembers for
	// deduplication.
	seenMax = 4096
)

// noLevel marks an entry that is a bridge notice, not a relayed message.
const noLevel identity.Level = -1

// entryKey identifies a message for deduplication: the server, the scope
// (a channel, or "@" + sender for a whisper) and its seq. The zero key is
// never deduplicated.
type entryKey struct {
	server, scope string
	seq           uint64
}

// entry is one rendered delivery waiting in the inbox.
type entry struct {
	key   entryKey
	level identity.Level // noLevel for a notice
	scope string         // where it came from, for the overflow note: "#ops on `ws://…`"
	text  string         // the rendered <channel> element
}

// drops counts entries dropped from one scope because the inbox was full.
type drops struct {
	scope    string
	n        int
	min, max uint64 // seq range, 0 when unknown
}

// inbox keeps what the bridge would push, for delivery at turn
// boundaries (SPEC.md §6, delivery "hooks"). It is bounded in bytes: a
// new entry that does not fit evicts the oldest unread ones, and the
// evictions are counted and said at the head of the next delivery. Safe
// for concurrent use.
type inbox struct {
	limit int

	// mu guards the fields below.
	mu      sync.Mutex
	unread  []entry
	size    int // bytes of unread texts
	seen    map[entryKey]bool
	seenFIF []entryKey // insertion order of seen, oldest first
	dropped []drops    // in order of first drop
	changed chan struct{}
}

func newInbox(limit int) *inbox {
	if limit <= 0 {
		limit = DefaultInboxBytes
	}
	return &inbox{limit: limit, seen: make(map[entryKey]bool), changed: make(chan struct{})}
}

// add keeps e unless its key was seen before. It reports whether e was
// kept.
func (in *inbox) add(e entry) bool {
	if len(e.text) > entryMax {
		e.text = cutEntry(e.text)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if e.key != (entryKey{}) {
		if in.seen[e.key] {
			return false
		}
		in.seen[e.key] = true
		in.seenFIF = append(in.seenFIF, e.key)
		if len(in.seenFIF) > seenMax {
			delete(in.seen, in.seenFIF[0])
			in.seenFIF = in.seenFIF[1:]
		}
	}
	for len(in.unread) > 0 && in.size+len(e.text) > in.limit {
		in.dropLocked(in.unread[0])
		in.size -= len(in.unread[0].text)
		in.unread[0] = entry{}
		in.unread = in.unread[1:]
	}
	if len(e.text) > in.limit {
		in.dropLocked(e)
		return false
	}
	in.unread = append(in.unread, e)
	in.size += len(e.text)
	close(in.changed)
	in.changed = make(chan struct{})
	return true
}

func (in *inbox) dropLocked(e entry) {
	for i := range in.dropped {
		d := &in.dropped[i]
		if d.scope == e.scope {
			d.n++
			if e.key.seq != 0 {
				if d.min == 0 || e.key.seq < d.min {
					d.min = e.key.seq
				}
				d.max = max(d.max, e.key.seq)
			}
			return
		}
	}
	in.dropped = append(in.dropped, drops{scope: e.scope, n: 1, min: e.key.seq, max: e.key.seq})
}

// batch is what one delivery hands out: the overflow since the last
// delivery, then unread entries in order, and what stays unread.
type batch struct {
	dropped   []drops
	entries   []entry
	left      int // entries still unread after this batch
	leftBytes int
}

// empty reports whether the batch has nothing to say.
func (b *batch) empty() bool { return len(b.entries) == 0 && len(b.dropped) == 0 }

// answerable reports whether the batch holds a message at converse or
// act whose answer the emit budget allows now (a whisper is answered by
// a whisper to its sender, a channel message in its channel).
func (b *batch) answerable(bu *budget) bool {
	for _, e := range b.entries {
		if e.level < identity.Converse {
			continue
		}
		if bu == nil || !bu.spent(e.key.server, replyScope(e.key.scope)) {
			return true
		}
	}
	return false
}

// replyScope is the emit budget's scope for an answer to an entry of
// scope ("#channel" or "@sender"); "" for an entry without a key.
func replyScope(scope string) string {
	switch {
	case strings.HasPrefix(scope, "#"):
		return "channel " + scope[1:]
	case strings.HasPrefix(scope, "@"):
		return "whispers to " + scope[1:]
	}
	return ""
}

// peek returns the unread entries, oldest first, up to limit bytes (at
// least one entry), with the overflow note, and marks nothing read.
func (in *inbox) peek(limit int) batch {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.batchLocked(limit)
}

// take is peek that marks what it returns read and clears the overflow
// count it reported.
func (in *inbox) take(limit int) batch {
	in.mu.Lock()
	defer in.mu.Unlock()
	b := in.batchLocked(limit)
	in.commitLocked(&b)
	return b
}

// takeIf is take when the batch peek would return satisfies ok; else it
// returns that batch without marking it read.
func (in *inbox) takeIf(limit int, ok func(*batch) bool) (batch, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	b := in.batchLocked(limit)
	if !ok(&b) {
		return b, false
	}
	in.commitLocked(&b)
	return b, true
}

func (in *inbox) batchLocked(limit int) batch {
	var b batch
	b.dropped = append(b.dropped, in.dropped...)
	used := 0
	for _, e := range in.unread {
		if len(b.entries) > 0 && used+len(e.text) > limit {
			break
		}
		b.entries = append(b.entries, e)
		used += len(e.text)
	}
	b.left = len(in.unread) - len(b.entries)
	b.leftBytes = in.size - used
	return b
}

func (in *inbox) commitLocked(b *batch) {
	n := len(b.entries)
	for i := range n {
		in.size -= len(in.unread[i].text)
		in.unread[i] = entry{}
	}
	in.unread = in.unread[n:]
	in.dropped = nil
}

// wait blocks until something is unread or ctx ends; it reports whether
// something is unread.
func (in *inbox) wait(ctx context.Context) bool {
	for {
		in.mu.Lock()
		n, changed := len(in.unread), in.changed
		dropped := len(in.dropped)
		in.mu.Unlock()
		if n > 0 || dropped > 0 {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// text renders a batch for the model: the overflow note, the entries,
// and how much is left. Empty for an empty batch.
func (b *batch) text(how string) string {
	if b.empty() {
		return ""
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "conclave: %d new message(s) %s.", len(b.entries), how)
	if len(b.dropped) > 0 {
		sb.WriteString(" The inbox was full, so older unread messages were dropped:")
		for i, d := range b.dropped {
			if i > 0 {
				sb.WriteByte(';')
			}
			fmt.Fprintf(&sb, " %d from %s", d.n, d.scope)
			if d.min != 0 {
				fmt.Fprintf(&sb, " (seq %d to %d)", d.min, d.max)
			}
		}
		sb.WriteString(". catch_up with `since` reads a channel's history again.")
	}
	sb.WriteByte('\n')
	for _, e := range b.entries {
		sb.WriteString(e.text)
		sb.WriteByte('\n')
	}
	if b.left > 0 {
		fmt.Fprintf(&sb, "conclave: %d more unread message(s) (%d bytes) wait in the inbox: call read_inbox to read them.\n", b.left, b.leftBytes)
	}
	return strings.TrimSuffix(sb.String(), "\n")
}

// cutEntry shortens a rendered element that is over entryMax, keeping
// its closing tag.
func cutEntry(text string) string {
	const closing = "\n</channel>"
	const note = " […message cut: catch_up shows it whole]"
	body := strings.TrimSuffix(text, closing)
	body = truncateUTF8(body, entryMax-len(closing)-len(note))
	return body + note + closing
}
