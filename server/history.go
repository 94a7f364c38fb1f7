package server

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/protocol"
)

// History record limits.
const (
	historyQueue     = 1 << 16   // posts waiting for persistPosts
	historyBatch     = 1024      // records in one history fsync
	historyPageBytes = 4 << 20   // record bytes in one history page (within a session's queue budget)
	purgeEvery       = time.Hour // how often aged messages are dropped
)

// histRecord is one stored channel message (JSON in DIR/history). CID is
// the channel's stable id, so a rename keeps its history and a new channel
// of a deleted one's name starts empty.
type histRecord struct {
	CID    uint64           `json:"cid"`
	From   string           `json:"from"`
	TsMs   int64            `json:"ts_ms"`
	Body   *string          `json:"body,omitempty"`
	Sealed *protocol.Sealed `json:"sealed,omitempty"`
}

// appendHistRecord appends r's JSON, the bytes json.Marshal(histRecord)
// gives, without reflection (it runs once per post).
func appendHistRecord(dst []byte, cid uint64, from string, tsMs int64, body *string, sealed *protocol.Sealed) []byte {
	dst, _ = appendHistRecordPayload(dst, cid, from, tsMs, body, sealed)
	return dst
}

// appendHistRecordPayload is appendHistRecord that also returns the
// offset in dst at which the record's payload members start; they are
// what protocol.AppendPayload writes and end one byte before the record.
func appendHistRecordPayload(dst []byte, cid uint64, from string, tsMs int64, body *string, sealed *protocol.Sealed) ([]byte, int) {
	dst = append(dst, `{"cid":`...)
	dst = strconv.AppendUint(dst, cid, 10)
	dst = append(dst, `,"from":`...)
	dst = protocol.AppendString(dst, from)
	dst = append(dst, `,"ts_ms":`...)
	dst = strconv.AppendInt(dst, tsMs, 10)
	at := len(dst)
	dst = protocol.AppendPayload(dst, body, sealed)
	return append(dst, '}'), at
}

// histEntry locates one message of a channel: its seq (the history log
// index, increasing server-wide) and time.
type histEntry struct {
	seq  uint64
	tsMs int64
}

// histOp is a post waiting to become durable before its ack is sent.
type histOp struct {
	cid  uint64
	seq  uint64
	tsMs int64
	data []byte
	sess *session
	id   string
}

// history is the channel-message store: an eventlog.Plain on disk (a map
// in memory when ephemeral), an in-memory index per channel, a goroutine
// (persistPosts) that group-commits posts and acks them once durable, and
// a retention purge.
type history struct {
	srv       *Server
	log       *eventlog.Plain // nil when ephemeral
	retention time.Duration

	// seqMu orders posts: it guards next and lastTs, and is held while a
	// post is queued and fanned out, so deliveries leave in seq order.
	seqMu  sync.Mutex
	next   uint64
	lastTs int64
	closed bool // no more posts: persistPosts is flushing for shutdown

	// idxMu guards index and mem.
	idxMu sync.RWMutex
	index map[uint64][]histEntry // channel id -> its durable messages, oldest first
	mem   map[uint64][]byte      // ephemeral storage, by seq
	// settled is the number up to which every post is stored and
	// indexed, or refused; advanced is closed (and replaced) when it grows.
	settled  uint64
	advanced chan struct{}

	queue chan *histOp

	// gapMu guards broken.
	gapMu  sync.Mutex
	broken map[uint64]bool // seqs of damaged records found so far
}

func openHistory(s *Server) (*history, error) {
	h := &history{srv: s, retention: s.cfg.HistoryRetention, index: make(map[uint64][]histEntry),
		queue: make(chan *histOp, historyQueue), advanced: make(chan struct{}), broken: make(map[uint64]bool)}
	if s.store == nil {
		h.mem = make(map[uint64][]byte)
		h.next = 1
		return h, nil
	}
	dir := s.store.data.History()
	// KeepDamaged: history is chat, not authority; a damaged record in
	// the middle of the newest segment must not stop the server.
	log, err := eventlog.OpenPlain(dir, &eventlog.Options{NoSync: s.cfg.NoSync, Logger: s.log, FailHook: s.cfg.failHook, KeepDamaged: true})
	if err != nil {
		return nil, fmt.Errorf("open history in %s: %w", dir, err)
	}
	h.log = log
	h.next = log.LastIndex() + 1
	h.settled = log.LastIndex()
	live := make(map[uint64]bool)
	for _, c := range s.state.Channels() {
		live[c.ID] = true
	}
	start, n := time.Now(), 0
	err = h.load(dir, func(idx uint64, r *histRecord) {
		if r.TsMs > h.lastTs {
			h.lastTs = r.TsMs
		}
		if live[r.CID] {
			h.index[r.CID] = append(h.index[r.CID], histEntry{seq: idx, tsMs: r.TsMs})
			n++
		}
	})
	if err != nil {
		log.Close()
		return nil, fmt.Errorf("scan history in %s: %w", dir, err)
	}
	s.log.Info("history loaded", "messages", n, "took", time.Since(start).Round(time.Microsecond).String())
	return h, nil
}

// at runs fn under the lock that numbers posts and returns the number of
// the last post numbered: a subscription made by fn gets every post after
// it, and every post up to it is history (once settled, see waitSettled).
func (h *history) at(fn func()) uint64 {
	h.seqMu.Lock()
	defer h.seqMu.Unlock()
	fn()
	return h.next - 1
}

// post stores and fans out one message. The ack is sent by the history
// persistPosts once the record is durable; post returns a refusal or nil.
func (h *history) post(sess *session, f *protocol.Frame, cid uint64) *protocol.Error {
	// Wait (pausing this session's reader) while it has too many posts
	// awaiting durability; persistPosts gives the token back with
	// the ack.
	select {
	case sess.posts <- struct{}{}:
	case <-sess.dead:
		return protocol.Errorf(protocol.CodeInternal, "session closed")
	case <-h.srv.stop:
		return protocol.Errorf(protocol.CodeInternal, "server is shutting down")
	}
	h.seqMu.Lock()
	defer h.seqMu.Unlock()
	if h.closed {
		<-sess.posts
		return protocol.Errorf(protocol.CodeInternal, "server is shutting down")
	}
	ts := time.Now().UnixMilli()
	if ts < h.lastTs {
		ts = h.lastTs // keep time monotonic in seq, for retention
	}
	// The history record and the delivery share one allocation; both are
	// encoded once, whatever the number of recipients.
	// The payload (the body, escaped) is encoded once and copied into
	// the delivery. Code grows by about a third when escaped; a body
	// that grows more costs one more allocation for its delivery.
	buf := make([]byte, 0, 3*f.PayloadSize()+2*len(sess.path)+len(f.Channel)+192)
	buf, at := appendHistRecordPayload(buf, cid, sess.path, ts, f.Body, f.Sealed)
	data := buf[:len(buf):len(buf)]
	op := &histOp{cid: cid, seq: h.next, tsMs: ts, data: data, sess: sess, id: f.ID}
	select {
	case h.queue <- op:
	default:
		<-sess.posts
		return protocol.Errorf(protocol.CodeRateLimited, "server is busy storing messages; retry in a moment")
	}
	h.next++
	h.lastTs = ts
	delivery := protocol.AppendDeliveryPayload(buf[len(buf):], f.Channel, sess.path, data[at:len(data)-1], ts, op.seq)
	n := h.srv.hub.publish(f.Channel, sess, delivery)
	h.srv.metrics.messagesIn.Add(1)
	h.srv.metrics.deliveries.Add(int64(n))
	return nil
}

// persistPosts group-commits queued posts and acks them once durable. At
// shutdown it stops new posts and writes every queued one before it
// returns: those were delivered live, so their numbers must be stored.
func (h *history) persistPosts() {
	defer h.srv.wg.Done()
	batch := make([]*histOp, 0, historyBatch)
	datas := make([][]byte, 0, historyBatch)
	for {
		batch, datas = batch[:0], datas[:0]
		select {
		case op := <-h.queue:
			batch = append(batch, op)
		case <-h.srv.stop:
			h.seqMu.Lock()
			h.closed = true
			h.seqMu.Unlock()
			for {
				batch, datas = h.take(batch[:0]), datas[:0]
				if len(batch) == 0 {
					return
				}
				h.commit(batch, datas)
			}
		}
		batch = h.take(batch)
		h.commit(batch, datas)
	}
}

// take adds to batch what is queued, without waiting, up to historyBatch.
func (h *history) take(batch []*histOp) []*histOp {
	for len(batch) < historyBatch {
		select {
		case op := <-h.queue:
			batch = append(batch, op)
		default:
			return batch
		}
	}
	return batch
}

// commit appends one batch and acks its posts, or refuses them.
func (h *history) commit(batch []*histOp, datas [][]byte) {
	for _, op := range batch {
		datas = append(datas, op.data)
	}
	start := time.Now()
	err := h.append(batch, datas)
	if h.log != nil {
		h.srv.metrics.observeHistoryAppend(time.Since(start), len(batch))
	}
	if err != nil {
		h.srv.log.Error("history append failed; the posts of the batch are refused", "messages", len(batch), "err", err)
		// Posts queued after the batch were numbered past it: refuse
		// them too. Their numbers, and the batch's, may already have
		// reached subscribers, so they are never reused: the next
		// append fills the gap with gap records. This happens before
		// the batch is refused, so that a post sent after its sender
		// saw the refusal is not refused with it.
		h.seqMu.Lock()
		h.failQueued()
		through := h.next - 1
		h.seqMu.Unlock()
		h.advance(through)
		h.fail(batch)
		return
	}
	h.idxMu.Lock()
	for _, op := range batch {
		h.index[op.cid] = append(h.index[op.cid], histEntry{seq: op.seq, tsMs: op.tsMs})
	}
	h.idxMu.Unlock()
	h.advance(batch[len(batch)-1].seq)
	for _, op := range batch {
		op.sess.replyAck(op.id, op.tsMs, op.seq)
	}
}

func (h *history) append(batch []*histOp, datas [][]byte) error {
	if h.log == nil {
		h.idxMu.Lock()
		for i, op := range batch {
			h.mem[op.seq] = datas[i]
		}
		h.idxMu.Unlock()
		return nil
	}
	have := h.log.LastIndex() + 1
	want := batch[0].seq
	if want < have {
		return fmt.Errorf("history numbering drifted: the log is at %d, the batch numbered from %d", have, want)
	}
	if want > have {
		// Fill the numbers of refused posts (see persistPosts) with gap
		// records (see the gap rule in history_gap.go).
		filler := HistoryGapRecord(batch[0].tsMs)
		fill := make([][]byte, 0, want-have+uint64(len(datas)))
		for i := have; i < want; i++ {
			fill = append(fill, filler)
		}
		datas = append(fill, datas...)
	}
	first, err := h.log.Append(datas)
	if err != nil {
		return err
	}
	if first != have {
		return fmt.Errorf("history numbering drifted: stored at %d, numbered %d", first, have)
	}
	return nil
}

// fail refuses posts the log could not store; their numbers are gaps (the
// gap rule, history_gap.go).
func (h *history) fail(batch []*histOp) {
	for _, op := range batch {
		op.sess.replyFrame(protocol.MustEncode(protocol.ErrorFrame(op.id, protocol.Errorf(protocol.CodeInternal,
			"the server could not store this message; it may have reached some subscribers, but it is not in the history"))))
	}
}

func (h *history) failQueued() {
	for {
		select {
		case op := <-h.queue:
			h.fail([]*histOp{op})
		default:
			return
		}
	}
}

// page returns up to limit messages of channel cid after seq after (or
// from time sinceMs when after is nil), oldest first. With until it
// returns none numbered above until, and first waits until every post
// numbered up to until is stored or refused, so that the page holds
// exactly what was posted up to there.
func (h *history) page(ctx context.Context, cid uint64, channel string, after *uint64, sinceMs *int64, until *uint64, limit int) (*protocol.Frame, error) {
	if limit <= 0 || limit > protocol.HistoryPageMax {
		limit = protocol.HistoryPageMax
	}
	if until != nil {
		h.seqMu.Lock()
		through := min(*until, h.next-1) // nothing is owed beyond what was numbered
		h.seqMu.Unlock()
		if err := h.waitSettled(ctx, through); err != nil {
			return nil, err
		}
	}
	h.idxMu.RLock()
	entries := h.index[cid]
	var i int
	switch {
	case after != nil:
		i = sort.Search(len(entries), func(k int) bool { return entries[k].seq > *after })
	case sinceMs != nil:
		i = sort.Search(len(entries), func(k int) bool { return entries[k].tsMs >= *sinceMs })
	}
	end := len(entries)
	if until != nil {
		end = sort.Search(len(entries), func(k int) bool { return entries[k].seq > *until })
	}
	var want []histEntry
	if i < end {
		want = append(want, entries[i:min(i+limit, end)]...)
	}
	more := i+len(want) < end
	var memData [][]byte
	if h.log == nil {
		for _, e := range want {
			memData = append(memData, h.mem[e.seq])
		}
	}
	h.idxMu.RUnlock()

	out := &protocol.Frame{Type: protocol.THistory, Channel: channel, Messages: []protocol.HistoryMessage{}}
	if after != nil {
		out.NextSeq = *after
	}
	bytes := 0
	for k, e := range want {
		var data []byte
		if h.log == nil {
			data = memData[k]
		} else {
			var err error
			if data, err = h.log.Read(e.seq); err != nil {
				if e.tsMs < time.Now().Add(-h.retention).UnixMilli() {
					continue // purged between the index read and now
				}
				if h.readGap(e.seq, err) {
					continue
				}
				return nil, fmt.Errorf("read history %d: %w", e.seq, err)
			}
		}
		var r histRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("decode history %d: %w", e.seq, err)
		}
		if bytes > 0 && bytes+len(data) > historyPageBytes {
			more = true
			break
		}
		bytes += len(data)
		out.Messages = append(out.Messages, protocol.HistoryMessage{Seq: e.seq, From: r.From, TsMs: r.TsMs, Body: r.Body, Sealed: r.Sealed})
		out.NextSeq = e.seq
	}
	out.More = more
	return out, nil
}

// forget makes a deleted channel's history unreadable at once; the
// records leave the disk when they age out.
func (h *history) forget(cid uint64) {
	h.idxMu.Lock()
	delete(h.index, cid)
	h.idxMu.Unlock()
}

// purge drops messages older than the retention from the index and the
// front of the log.
func (h *history) purge(now time.Time) {
	cutoff := now.Add(-h.retention).UnixMilli()
	h.seqMu.Lock()
	keepFrom := h.next
	h.seqMu.Unlock()
	h.idxMu.Lock()
	dropped := 0
	for cid, entries := range h.index {
		i := sort.Search(len(entries), func(k int) bool { return entries[k].tsMs >= cutoff })
		dropped += i
		entries = entries[i:]
		if len(entries) == 0 {
			delete(h.index, cid)
			continue
		}
		h.index[cid] = entries
		keepFrom = min(keepFrom, entries[0].seq)
	}
	if h.log == nil {
		for seq := range h.mem {
			if seq < keepFrom {
				delete(h.mem, seq)
			}
		}
	}
	h.idxMu.Unlock()
	if h.log != nil && keepFrom > h.log.FirstIndex() {
		if err := h.log.TruncateFront(keepFrom); err != nil {
			h.srv.log.Error("history purge failed", "err", err)
			return
		}
	}
	if dropped > 0 {
		h.srv.log.Info("history purged", "messages", dropped, "retention", h.retention.String())
	}
}

// purger runs purge at start and every purgeEvery.
func (h *history) purger() {
	defer h.srv.wg.Done()
	h.purge(time.Now())
	t := time.NewTicker(purgeEvery)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			h.purge(now)
		case <-h.srv.stop:
			return
		}
	}
}

func (h *history) close() error {
	if h.log == nil {
		return nil
	}
	return h.log.Close()
}
