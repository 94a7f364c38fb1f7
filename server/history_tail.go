package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/conclave/conclave/protocol"
)

// errHistoryStopped ends a wait for persistPosts at shutdown.
var errHistoryStopped = errors.New("server: history stopped")

// advance records that every post numbered up to seq has been stored or
// refused, and wakes the readers waiting for it.
func (h *history) advance(seq uint64) {
	h.idxMu.Lock()
	if seq > h.settled {
		h.settled = seq
		close(h.advanced)
		h.advanced = make(chan struct{})
	}
	h.idxMu.Unlock()
}

// waitSettled blocks until every post numbered up to through has been
// stored (and indexed) or refused.
func (h *history) waitSettled(ctx context.Context, through uint64) error {
	for {
		h.idxMu.RLock()
		done, ch := h.settled >= through, h.advanced
		h.idxMu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-h.srv.stop:
			return errHistoryStopped
		}
	}
}

// pageBefore returns the newest (up to limit) messages of channel cid
// numbered below before, oldest first; More says that older ones remain
// and NextSeq is the page's oldest seq, the before_seq of the next older
// page.
//
// It first waits until every post numbered so far (and below before) is
// stored or refused: posts are delivered live before they are durable, so
// without the wait a client that joins and then asks for the newest page
// could miss a post that was delivered before it joined but not yet
// indexed. With it, "join, then the newest page, merged by seq with the
// live deliveries" has no gap.
func (h *history) pageBefore(ctx context.Context, cid uint64, channel string, before uint64, limit int) (*protocol.Frame, error) {
	if limit <= 0 || limit > protocol.HistoryPageMax {
		limit = protocol.HistoryPageMax
	}
	if before == 0 {
		before = math.MaxUint64 // the newest page
	}
	h.seqMu.Lock()
	through := h.next - 1
	h.seqMu.Unlock()
	if before-1 < through {
		through = before - 1
	}
	if err := h.waitSettled(ctx, through); err != nil {
		return nil, err
	}
	h.idxMu.RLock()
	entries := h.index[cid]
	j := sort.Search(len(entries), func(k int) bool { return entries[k].seq >= before })
	i := max(0, j-limit)
	want := append([]histEntry(nil), entries[i:j]...)
	var memData [][]byte
	if h.log == nil {
		for _, e := range want {
			memData = append(memData, h.mem[e.seq])
		}
	}
	h.idxMu.RUnlock()

	more := i > 0
	// Read newest first, so that the byte cap drops the oldest end of the
	// page and the next older page continues where this one stops.
	msgs := make([]protocol.HistoryMessage, 0, len(want))
	bytes := 0
	for k := len(want) - 1; k >= 0; k-- {
		e := want[k]
		var data []byte
		if h.log == nil {
			data = memData[k]
		} else {
			var err error
			if data, err = h.log.Read(e.seq); err != nil {
				if e.tsMs < time.Now().Add(-h.retention).UnixMilli() {
					more = false // purged: nothing older remains either
					break
				}
				if h.readGap(e.seq, err) {
					continue
				}
				return nil, fmt.Errorf("read history %d: %w", e.seq, err)
			}
		}
		if bytes > 0 && bytes+len(data) > historyPageBytes {
			more = true
			break
		}
		var r histRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("decode history %d: %w", e.seq, err)
		}
		bytes += len(data)
		msgs = append(msgs, protocol.HistoryMessage{Seq: e.seq, From: r.From, TsMs: r.TsMs, Body: r.Body, Sealed: r.Sealed})
	}
	for a, b := 0, len(msgs)-1; a < b; a, b = a+1, b-1 {
		msgs[a], msgs[b] = msgs[b], msgs[a]
	}
	out := &protocol.Frame{Type: protocol.THistory, Channel: channel, Messages: msgs, More: more}
	if len(msgs) > 0 {
		out.NextSeq = msgs[0].Seq
	}
	return out, nil
}
