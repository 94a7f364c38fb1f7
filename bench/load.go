package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/protocol"
)

// load is the shared state of one measured run: the message window, the
// count of deliveries each message still waits for, and the clock that
// stamps and times them.
type load struct {
	start     time.Time // the clock's zero
	measuring atomic.Bool

	window   int64
	inflight atomic.Int64 // messages sent but not yet delivered to every recipient
	slots    []atomic.Int32
	mask     uint64

	next     atomic.Uint64 // the next message number
	sent     atomic.Uint64
	expected atomic.Int64 // deliveries owed for the messages sent

	stop  chan struct{} // closed to stop the publishers
	wakes []chan struct{}

	mu      sync.Mutex
	refusal string // the first refusal of a post other than rate_limited
}

func newLoad(window, publishers int) *load {
	n := 1 << 16
	for n < window*64 {
		n <<= 1
	}
	l := &load{start: time.Now(), window: int64(window), slots: make([]atomic.Int32, n), mask: uint64(n - 1),
		stop: make(chan struct{})}
	for range publishers {
		l.wakes = append(l.wakes, make(chan struct{}, 1))
	}
	return l
}

// clock returns nanoseconds since l.start (monotonic).
func (l *load) clock() int64 { return int64(time.Since(l.start)) }

// delivered counts one delivery of message seq.
func (l *load) delivered(seq uint64) {
	if l.slots[seq&l.mask].Add(-1) == 0 {
		l.complete()
	}
}

// refused releases a message the server refused: nobody will receive it.
func (l *load) refused(seq uint64) {
	if n := l.slots[seq&l.mask].Swap(0); n > 0 {
		l.expected.Add(-int64(n))
		l.complete()
	}
}

func (l *load) complete() {
	l.inflight.Add(-1)
	for _, w := range l.wakes {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

func (l *load) noteRefusal(f *protocol.Frame) {
	l.mu.Lock()
	if l.refusal == "" {
		l.refusal = string(f.Code) + ": " + f.Message
	}
	l.mu.Unlock()
}

// template is one channel's prepared posts: the bytes sent, one buffer
// per body variant, with the places the message number and time are
// written into (the same in every variant: they precede the body text).
type template struct {
	conn    *websocket.Conn
	bufs    [][]byte
	idOff   int // -1: no id (the baseline)
	bodyOff int
	expect  int32 // deliveries owed per message
}

// newTemplate builds the frames a publisher sends to channel name, one
// per body. For conclave it is a channel_msg request with an id; for the
// baseline it is already shaped like the delivery conclave would send
// (its body encoded as conclave encodes it), since the bare server
// relays bytes.
func newTemplate(conn *websocket.Conn, channel, from string, bodies []string, baseline bool, expect int) template {
	t := template{conn: conn, expect: int32(expect), idOff: -1}
	for v, body := range bodies {
		var b []byte
		b = append(b, `{"type":"channel_msg",`...)
		if !baseline {
			b = append(b, `"id":"`...)
			t.idOff = len(b)
			b = append(b, "0000000000000000"...)
			b = append(b, `",`...)
		}
		b = append(b, `"channel":"`...)
		b = append(b, channel...)
		b = append(b, `",`...)
		if baseline {
			b = append(b, `"from":"`...)
			b = append(b, from...)
			b = append(b, `",`...)
		}
		b = append(b, `"body":`...)
		t.bodyOff = len(b) + 1
		if baseline {
			b = protocol.AppendString(b, body)
			b = append(b, `,"ts_ms":1767225600000,"seq":1000000`...)
		} else {
			b = appendPostBody(b, body, v)
		}
		b = append(b, '}')
		t.bufs = append(t.bufs, b)
	}
	return t
}

// publish sends messages round-robin over the templates until stop: as
// fast as the window allows, or at rate messages per second overall (this
// publisher taking its share), each stamped with its scheduled time.
func (l *load) publish(idx, publishers int, rate float64, ts []template, t0 int64) error {
	ctx := context.Background()
	wake := l.wakes[idx]
	var timer *time.Timer
	for j := 0; ; j++ {
		select {
		case <-l.stop:
			return nil
		default:
		}
		var due int64
		if rate > 0 {
			due = t0 + int64(float64(j*publishers+idx)/rate*1e9)
			if d := due - l.clock(); d > 0 {
				if timer == nil {
					timer = time.NewTimer(time.Duration(d))
				} else {
					timer.Reset(time.Duration(d))
				}
				select {
				case <-timer.C:
				case <-l.stop:
					return nil
				}
			}
		}
		for l.inflight.Load() >= l.window {
			select {
			case <-wake:
			case <-l.stop:
				return nil
			}
		}
		k := l.next.Add(1) - 1
		t := &ts[(j+idx)%len(ts)]
		slot := &l.slots[k&l.mask]
		// A message this old still owed deliveries: one was lost. Its
		// slot never frees; wait for the end of the run.
		for slot.Load() != 0 {
			select {
			case <-wake:
			case <-l.stop:
				return nil
			}
		}
		stamp := l.clock()
		if rate > 0 {
			stamp = due
		}
		slot.Store(t.expect)
		l.inflight.Add(1)
		l.expected.Add(int64(t.expect))
		l.sent.Add(1)
		buf := t.bufs[(k/uint64(len(ts)))%uint64(len(t.bufs))]
		if t.idOff >= 0 {
			putHex16(buf[t.idOff:], k)
		}
		putHex16(buf[t.bodyOff:], k)
		putHex16(buf[t.bodyOff+16:], uint64(stamp))
		if err := t.conn.Write(ctx, websocket.MessageText, buf); err != nil {
			select {
			case <-l.stop:
				return nil
			default:
			}
			return err
		}
	}
}
