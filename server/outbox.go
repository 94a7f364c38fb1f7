package server

import (
	"context"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/protocol"
)

// maxCoalesce bounds the frames one WebSocket message carries.
const maxCoalesce = 256

// outbox is a session's outbound queue: encoded frames waiting for the
// session's writeLoop goroutine, which takes everything queued in one step
// and sends it coalesced, up to maxCoalesce frames and
// protocol.CoalesceBytes per WebSocket message (JSON Lines). It is a slice
// rather than a channel so that an idle session holds no queue memory.
//
// writeLoop runs only while there is something to write: the first frame
// queued to an idle session starts it, and it ends once it finds the queue
// empty, so that an idle session holds no writer goroutine (nor its stack).
// kill starts it too, to send the final frame and close the connection.
//
// The queue is bounded twice: in entries (Config.QueueLen) and in bytes
// (Config.QueueBytes). Bytes count from the moment a frame is queued until
// writeLoop has written it, so a reader that keeps reading slowly cannot
// make the server hold more than its budget for it (plus one frame: a
// frame is always accepted into an empty outbox, so that no single reply
// is refused for its size alone).
//
// Replies to posts (acks, which persistPosts releases a batch at a
// time after its fsync) are merged into one entry while they follow each
// other, so that a batch of replies takes a few entries of the queue
// rather than one each.
type outbox struct {
	// The fan-out touches only this struct (and the queue's array) for
	// each delivery: keep it off the cache lines of the session's other
	// fields, which other goroutines write.
	_ [64]byte

	// mu guards the fields below.
	mu       sync.Mutex
	queue    []qframe
	queuedAt time.Time // when the oldest entry was queued
	replies  int       // replies to posts in queue (see session.posts)
	bytes    int       // bytes queued or being written (the budget's use)
	merge    bool      // the last entry holds replies and may take more
	closed   bool      // the session is dead: discard what comes
	running  bool      // a writeLoop goroutine runs (or is starting)

	_ [64]byte
}

// close makes the outbox discard what is queued from now on (the session
// died; its writeLoop flushes what was queued before), and starts
// writeLoop if none runs, to close the connection.
func (sess *session) closeOutbox() {
	o := &sess.out
	o.mu.Lock()
	o.closed = true
	start := o.startLocked()
	o.mu.Unlock()
	if start {
		go sess.writeLoop()
	}
}

// startLocked reports whether the caller must start writeLoop (after
// unlocking): none runs yet. From then on one does.
func (o *outbox) startLocked() bool {
	if o.running {
		return false
	}
	o.running = true
	return true
}

// qframe is one queue entry: an encoded frame, or n replies separated by
// newlines.
type qframe struct {
	b []byte
	n int
}

// enqueue queues an encoded frame without blocking. It reports false when
// the queue is full or over its byte budget (the caller drops the session
// as a slow consumer); a dead session silently accepts and discards.
func (sess *session) enqueue(frame []byte) bool {
	o := &sess.out
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return true
	}
	if !sess.fitsLocked(len(frame)) {
		o.mu.Unlock()
		return false
	}
	o.bytes += len(frame)
	o.pushLocked(qframe{b: frame, n: 1})
	o.merge = false
	start := o.startLocked()
	o.mu.Unlock()
	if start {
		go sess.writeLoop()
	}
	return true
}

// fitsLocked reports whether n more bytes in one more entry stay within
// the session's budgets.
func (sess *session) fitsLocked(n int) bool {
	o := &sess.out
	if len(o.queue) >= sess.srv.cfg.QueueLen {
		return false
	}
	return o.bytes == 0 || o.bytes+n <= sess.srv.cfg.QueueBytes
}

// sent gives back the budget of n bytes writeLoop has written or
// discarded.
func (o *outbox) sent(n int) {
	o.mu.Lock()
	o.bytes -= n
	o.mu.Unlock()
}

// usage returns the bytes and entries the session's outbox holds.
func (o *outbox) usage() (bytes, entries int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.bytes, len(o.queue)
}

// pushLocked appends e.
func (o *outbox) pushLocked(e qframe) {
	if len(o.queue) == 0 {
		o.queuedAt = time.Now()
	}
	o.queue = append(o.queue, e)
}

// replyAck queues the ack of a stored post; see reply.
func (sess *session) replyAck(id string, tsMs int64, seq uint64) {
	sess.reply(func(b []byte) []byte { return protocol.AppendAck(b, id, tsMs, seq) })
}

// replyFrame queues an encoded reply to a post; see reply.
func (sess *session) replyFrame(frame []byte) {
	sess.reply(func(b []byte) []byte { return append(b, frame...) })
}

// reply queues the reply to a post, appended by encode, and counts it, so
// that its post's token is given back when writeLoop takes it (see
// session.posts). A session whose queue is full is dropped as a slow
// consumer.
func (sess *session) reply(encode func([]byte) []byte) {
	o := &sess.out
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		<-sess.posts
		return
	}
	if last := len(o.queue) - 1; o.merge && o.queue[last].n < maxCoalesce && (o.bytes < sess.srv.cfg.QueueBytes) {
		e := &o.queue[last]
		was := len(e.b)
		e.b = encode(append(e.b, '\n'))
		e.n++
		o.bytes += len(e.b) - was
		o.replies++
		o.mu.Unlock()
		return
	}
	b := encode(make([]byte, 0, 1024))
	if !sess.fitsLocked(len(b)) {
		o.mu.Unlock()
		<-sess.posts
		sess.kill(protocol.ReasonSlowConsumer)
		return
	}
	o.bytes += len(b)
	o.pushLocked(qframe{b: b, n: 1})
	o.merge = true
	o.replies++
	start := o.startLocked()
	o.mu.Unlock()
	if start {
		go sess.writeLoop()
	}
}

// take returns every queued entry and when the oldest was queued, leaving
// spare (emptied) as the new queue, and gives back the tokens of the posts
// whose replies it takes.
func (sess *session) take(spare []qframe) ([]qframe, time.Time) {
	o := &sess.out
	o.mu.Lock()
	batch, at, replies := o.queue, o.queuedAt, o.replies
	o.queue, o.replies, o.merge = spare[:0], 0, false
	o.mu.Unlock()
	for range replies {
		<-sess.posts
	}
	return batch, at
}

// writeLoop drains the outbound queue, coalescing queued frames into one
// message per write (up to maxCoalesce frames), until the queue is empty
// (then it ends; the next frame queued starts another) or the session
// dies (then it sends the final reason, closes the connection and closes
// sess.writerDone). At most one runs at a time (outbox.running).
func (sess *session) writeLoop() {
	w := sess.timedConn()
	var spare []qframe
	for {
		select {
		case <-sess.dead:
			w.timer.Stop()
			sess.flushAndClose(w, nil)
			close(sess.writerDone)
			return
		default:
		}
		// Let the goroutines that are ready run first (the fan-out of
		// further posts among them): what they queue rides in this
		// write. When nothing else is ready this returns at once. (Once
		// measured best: none gives shallower batches, two cost more
		// than they gain; see docs/PERFORMANCE.md.)
		runtime.Gosched()
		for {
			batch, at := sess.take(spare)
			if len(batch) == 0 {
				spare = batch
				break
			}
			frames, writes := 0, 0
			for rest := batch; len(rest) > 0; {
				select {
				case <-sess.dead:
					w.timer.Stop()
					sess.flushAndClose(w, rest)
					close(sess.writerDone)
					return
				default:
				}
				k, n, size := nextMessage(rest)
				if err := w.write(rest[:k], size); err != nil {
					sess.kill(reasonWriteFailed)
					sess.conn.CloseNow()
					close(sess.writerDone)
					return
				}
				sess.out.sent(size)
				rest = rest[k:]
				frames += n
				writes++
			}
			sess.srv.metrics.wrote(frames, writes, at)
			clear(batch)
			if cap(batch) <= 2*maxCoalesce {
				spare = batch[:0]
			} else {
				spare = nil // let a burst's queue go
			}
		}
		if sess.out.idle() {
			return
		}
	}
}

// idleQueueCap is the most entries the empty queue of an idle session
// keeps room for (128 bytes): enough for a session that gets a delivery
// at a time not to allocate for each, little enough to hold while idle.
const idleQueueCap = 4

// idle reports whether writeLoop may end: nothing is queued and the
// session lives. Then no writeLoop runs until the next frame is queued
// (or the session dies), which starts one. A large empty queue's array is
// let go.
func (o *outbox) idle() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) > 0 || o.closed {
		return false
	}
	if cap(o.queue) > idleQueueCap {
		o.queue = nil
	}
	o.running = false
	return true
}

// nextMessage returns how many entries from the start of q go into one
// message (at least one entry; more only while they hold at most
// maxCoalesce frames and protocol.CoalesceBytes bytes), how many frames
// they hold and their bytes (without the separating newlines).
func nextMessage(q []qframe) (entries, frames, size int) {
	for entries < len(q) {
		e := &q[entries]
		if entries > 0 && (frames+e.n > maxCoalesce || size+entries+len(e.b) > protocol.CoalesceBytes) {
			break
		}
		frames += e.n
		size += len(e.b)
		entries++
	}
	return entries, frames, size
}

// entriesSize returns the bytes of entries.
func entriesSize(entries []qframe) int {
	n := 0
	for _, e := range entries {
		n += len(e.b)
	}
	return n
}

// msgPool holds the buffers coalesced messages are built in, shared by
// every session's writeLoop.
var msgPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// timedConn writes a session's messages, each bounded by WriteTimeout: one
// timer per session, re-armed for every write, closes the connection if a
// write takes too long (which makes the write fail). This costs no
// allocation per write, unlike a context with a deadline.
type timedConn struct {
	sess  *session
	timer *time.Timer
}

// timedConn returns the session's timedConn, made by the first writeLoop
// (only one runs at a time).
func (sess *session) timedConn() *timedConn {
	if sess.writer == nil {
		t := time.AfterFunc(time.Hour, func() { sess.conn.CloseNow() })
		t.Stop()
		sess.writer = &timedConn{sess: sess, timer: t}
	}
	return sess.writer
}

// write sends entries, of size bytes, as one message, separated by
// newlines.
func (w *timedConn) write(entries []qframe, size int) error {
	if len(entries) == 1 {
		return w.writeMsg(entries[0].b)
	}
	bp := msgPool.Get().(*[]byte)
	msg := slices.Grow((*bp)[:0], size+len(entries))
	for i, e := range entries {
		if i > 0 {
			msg = append(msg, '\n')
		}
		msg = append(msg, e.b...)
	}
	err := w.writeMsg(msg)
	if cap(msg) <= 2*protocol.CoalesceBytes { // not a final flush's one-off
		*bp = msg
		msgPool.Put(bp)
	}
	return err
}

func (w *timedConn) writeMsg(b []byte) error {
	w.timer.Reset(w.sess.srv.cfg.WriteTimeout)
	err := w.sess.conn.Write(context.Background(), websocket.MessageText, b)
	w.timer.Stop()
	return err
}

// flushAndClose sends what is still queued after taken (bounded: one
// message), the final error frame with the reason, and closes the
// connection. A slow consumer gets the final frame alone: what was queued
// for it is discarded.
func (sess *session) flushAndClose(w *timedConn, taken []qframe) {
	rest, _ := sess.take(nil)
	queued := append(taken, rest...)
	defer func() { sess.out.sent(entriesSize(queued)) }()
	reason := sess.reason
	if reason == reasonClosed {
		closeConn(sess.conn, websocket.StatusNormalClosure, "", sess.cancelRead, closeWait)
		return
	}
	status := websocket.StatusPolicyViolation
	if reason == protocol.ReasonShutdown {
		status = websocket.StatusGoingAway
	}
	var msg []qframe
	if reason != protocol.ReasonSlowConsumer {
		k, frames, _ := nextMessage(queued)
		if k > 0 && frames >= maxCoalesce { // keep room for the final frame
			k--
		}
		msg = queued[:k:k]
	}
	final := protocol.MustEncode(protocol.ErrorFrame("", reason.Err()))
	msg = append(msg, qframe{b: final, n: 1})
	w.write(msg, entriesSize(msg))
	// A slow consumer has a backlog to read before it gets to the close:
	// give it as long as a write, or it would answer after the
	// connection is gone, and its kernel would discard the reason unread.
	wait := closeWait
	if reason == protocol.ReasonSlowConsumer {
		wait = sess.srv.cfg.WriteTimeout
	}
	closeConn(sess.conn, status, truncateReason(reason.Text()), sess.cancelRead, wait)
}

// readPool holds the buffers incoming messages are read into: a session's
// reader takes one only while it reads and decodes a message, so idle
// sessions hold none.
var readPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// readMessage reads the next message from conn into a buffer of
// readPool; give it back with putReadBuf.
func readMessage(ctx context.Context, conn *websocket.Conn) (websocket.MessageType, *[]byte, error) {
	typ, r, err := conn.Reader(ctx)
	if err != nil {
		return 0, nil, err
	}
	bp := readPool.Get().(*[]byte)
	buf := (*bp)[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			*bp = buf
			return typ, bp, nil
		}
		if err != nil {
			*bp = buf
			putReadBuf(bp)
			return 0, nil, err
		}
	}
}

// putReadBuf gives a buffer back to readPool, unless it grew large.
func putReadBuf(bp *[]byte) {
	if cap(*bp) <= 64<<10 {
		readPool.Put(bp)
	}
}
