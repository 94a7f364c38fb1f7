package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/protocol"
)

// eventBuffer is how many unprompted frames wait for a reader of Events
// before the connection's reader waits too.
const eventBuffer = 1024

// Conn is an authenticated connection to a server, made by [Dial].
//
// Its methods are safe for concurrent use. One goroutine reads from the
// server and routes what arrives: a reply to the request whose id it
// echoes, anything unprompted to [Conn.Events]. Events buffers 1024 frames;
// if nobody drains it the reader waits, which also holds back replies, so
// a caller that expects a steady stream of deliveries must read Events.
// Always call [Conn.Close], which stops the reader and waits for it.
type Conn struct {
	ws           *websocket.Conn
	readLimit    int64 // the largest message accepted from the server
	maxBody      int   // the server's body cap (0: not announced)
	url          string
	path         string
	serverID     string
	admin        bool
	replyTimeout time.Duration
	log          *slog.Logger

	events chan *protocol.Frame // closed by the reader when it ends
	done   chan struct{}        // closed by the reader when it ends
	stop   chan struct{}        // closed by Close: drop events from now on

	life   context.Context // the keepalive's context, cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the reader and the keepalive

	nextID    atomic.Uint64
	closeOnce sync.Once

	// mu guards the fields below.
	mu      sync.Mutex
	pending map[string]*Call // by id; nil once the connection has ended
	err     error            // why the connection ended; set once, by the reader
	closed  bool             // Close was called
	dropped *protocol.Error  // an id-less error frame: the server's reason for dropping us
	cause   error            // why this side ended the connection (a keepalive that failed)
}

func newConn(ws *websocket.Conn, o *Options, est *protocol.Frame, leftover []*protocol.Frame) *Conn {
	c := &Conn{
		ws:           ws,
		readLimit:    readLimitFor(est),
		maxBody:      est.MaxBody,
		url:          o.URL,
		path:         est.Path,
		serverID:     est.ServerID,
		admin:        est.Admin != nil && *est.Admin,
		replyTimeout: o.ReplyTimeout,
		log:          o.Logger.With("session", est.Path),
		events:       make(chan *protocol.Frame, eventBuffer),
		done:         make(chan struct{}),
		stop:         make(chan struct{}),
		pending:      make(map[string]*Call),
	}
	ws.SetReadLimit(c.readLimit)
	c.life, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go c.readLoop(leftover)
	if o.Keepalive > 0 {
		c.wg.Add(1)
		go c.keepalive(o.Keepalive)
	}
	return c
}

// Path returns the session's path, user/machine/session, as the server
// established it.
func (c *Conn) Path() string { return c.path }

// Admin reports whether the server counts this user as a server admin.
func (c *Conn) Admin() bool { return c.admin }

// MaxBody returns the server's cap on a message body in bytes, as it
// announced it in established (0: it did not say).
func (c *Conn) MaxBody() int { return c.maxBody }

// ServerID returns the id the server presented in its challenge.
func (c *Conn) ServerID() string { return c.serverID }

// URL returns the server URL the connection was dialled with.
func (c *Conn) URL() string { return c.url }

// Events returns the frames the server sends unprompted: channel_msg and
// whisper deliveries, unsubscribed and renamed notices, and the id-less
// error frame that announces the server dropping the session. The channel
// is closed when the connection ends, and after Close.
func (c *Conn) Events() <-chan *protocol.Frame { return c.events }

// Done returns a channel that is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is up: the
// server's reason for dropping the session (wrapping its
// [*protocol.Error]), a lost connection, a keepalive that timed out
// ([*TimeoutError]), or [ErrClosed] after Close.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Request sends f with a fresh id and waits for the reply that echoes it,
// at most the ReplyTimeout of [Options]. f itself is not modified.
//
// An error reply is returned as a [*protocol.Error]. If the connection ends
// first the error wraps [ErrNoResponse] and the reason; a Conn already
// closed gives [ErrClosed]; running out of time gives a [*TimeoutError]. If
// ctx ends first, its error is returned.
func (c *Conn) Request(ctx context.Context, f *protocol.Frame) (*protocol.Frame, error) {
	call, err := c.Send(ctx, f)
	if err != nil {
		return nil, err
	}
	defer c.forget(call)
	return call.Wait(ctx)
}

// Call is a request sent by [Conn.Send] whose reply may not have come yet.
type Call struct {
	c        *Conn
	id       string
	deadline time.Time     // the reply is due by then: ReplyTimeout after the send
	done     chan struct{} // closed by the reader when the reply came
	reply    *protocol.Frame
}

// Send sends f with a fresh id, like [Conn.Request], but returns as soon
// as it is written: [Call.Wait] waits for the reply. The server answers
// the requests of a session in the order they arrive, and requests sent
// one after another from one goroutine arrive in that order; replies are
// matched by id, whatever order they come in. [Pipeline] keeps a bounded
// number of calls in flight. f itself is not modified.
//
// Send fails as Request does when the request cannot be written: [ErrClosed]
// on a closed Conn, an error wrapping [ErrNoResponse] and the reason on one
// that has ended, a [*TimeoutError] for a write stuck past the
// ReplyTimeout, or ctx's error.
func (c *Conn) Send(ctx context.Context, f *protocol.Frame) (*Call, error) {
	if f == nil {
		return nil, errors.New("control: Send needs a frame")
	}
	req := *f
	req.ID = strconv.FormatUint(c.nextID.Add(1), 10)
	data, err := protocol.Encode(&req)
	if err != nil {
		return nil, err
	}
	call := &Call{c: c, id: req.ID, deadline: time.Now().Add(c.replyTimeout), done: make(chan struct{})}
	c.mu.Lock()
	if c.pending == nil {
		err := c.endedErrLocked(false)
		c.mu.Unlock()
		return nil, err
	}
	c.pending[req.ID] = call
	c.mu.Unlock()

	wctx, cancel := context.WithDeadline(ctx, call.deadline)
	defer cancel()
	if c.log.Enabled(ctx, slog.LevelDebug) {
		c.log.Debug("frame sent", "type", req.Type, "id", req.ID)
	}
	// A write whose context ends closes the connection (coder/websocket
	// cannot abandon half a message); that is fine, as nothing can be
	// sent after a stuck write anyway.
	err = c.ws.Write(wctx, websocket.MessageText, data)
	if err == nil {
		return call, nil
	}
	c.forget(call)
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case wctx.Err() != nil:
		return nil, &TimeoutError{After: c.replyTimeout, Op: "sending a request to " + c.url}
	}
	// The connection is gone; the reader notices at once and records why.
	select {
	case <-c.done:
		return nil, c.endedErr()
	case <-time.After(time.Second):
		return nil, fmt.Errorf("send %s request: %w", req.Type, err)
	}
}

// Wait waits for the reply to the call, at most until the ReplyTimeout of
// [Options] has passed since it was sent, and returns it as
// [Conn.Request] does, with the same errors. Wait may be called again, and
// from several goroutines.
func (call *Call) Wait(ctx context.Context) (*protocol.Frame, error) {
	c := call.c
	select {
	case <-call.done:
		return replyOrError(call.reply)
	default:
	}
	timer := time.NewTimer(time.Until(call.deadline))
	defer timer.Stop()
	select {
	case <-call.done:
		return replyOrError(call.reply)
	case <-c.done:
		// The reply may have come in just before the end.
		select {
		case <-call.done:
			return replyOrError(call.reply)
		default:
		}
		return nil, c.endedErr()
	case <-timer.C:
		c.forget(call)
		return nil, &TimeoutError{After: c.replyTimeout, Op: "waiting for a server response"}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Done returns a channel that is closed when the reply has come.
func (call *Call) Done() <-chan struct{} { return call.done }

func replyOrError(r *protocol.Frame) (*protocol.Frame, error) {
	if r.Type == protocol.TError {
		return nil, r.AsError()
	}
	return r, nil
}

// forget stops waiting for the reply to call: one that comes later is
// dropped.
func (c *Conn) forget(call *Call) {
	c.mu.Lock()
	if c.pending[call.id] == call {
		delete(c.pending, call.id) // a no-op on a nil map
	}
	c.mu.Unlock()
}

// endedErr is the error of a request that the end of the connection cut
// short.
func (c *Conn) endedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endedErrLocked(true)
}

func (c *Conn) endedErrLocked(waiting bool) error {
	switch {
	case errors.Is(c.err, ErrClosed) && waiting:
		return ErrNoResponse
	case errors.Is(c.err, ErrClosed):
		return ErrClosed
	case c.err == nil: // unreachable: pending is nil only after the end
		return ErrNoResponse
	}
	return fmt.Errorf("%w: %w", ErrNoResponse, c.err)
}

// Close ends the connection with a WebSocket close handshake (bounded by
// coder/websocket to a few seconds), stops the reader and the keepalive
// and waits for them. Pending requests fail with [ErrNoResponse]. Close is
// idempotent and returns nil.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.stop)
		c.cancel()
		_ = c.ws.Close(websocket.StatusNormalClosure, "")
		c.wg.Wait()
	})
	return nil
}

// abort ends the connection from this side for reason err.
func (c *Conn) abort(err error) {
	c.mu.Lock()
	if c.cause == nil {
		c.cause = err
	}
	c.mu.Unlock()
	_ = c.ws.CloseNow()
}

// readLoop is the connection's one reader. It routes every frame and, when
// the connection ends, records why and releases everyone waiting.
func (c *Conn) readLoop(leftover []*protocol.Frame) {
	defer c.wg.Done()
	for _, f := range leftover {
		c.dispatch(f)
	}
	// One buffer holds each message in turn: the decoded frames copy what
	// they keep out of it.
	var buf bytes.Buffer
	for {
		mt, r, err := c.ws.Reader(context.Background())
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			c.finish(err)
			return
		}
		if mt != websocket.MessageText {
			c.log.Debug("binary message from server ignored")
			continue
		}
		eachFrame(buf.Bytes(), c.log, c.dispatch)
		if buf.Cap() > keptBuffer {
			buf = bytes.Buffer{} // a history page: do not hold on to it
		}
	}
}

// keptBuffer is the most memory the reader keeps between messages.
const keptBuffer = 1 << 20

func (c *Conn) dispatch(f *protocol.Frame) {
	// Building the arguments costs allocations even when nothing is
	// logged; this runs for every delivery.
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("frame received", "type", f.Type, "id", f.ID)
	}
	if f.ID != "" {
		c.mu.Lock()
		call, ok := c.pending[f.ID]
		delete(c.pending, f.ID)
		c.mu.Unlock()
		if ok {
			call.reply = f // once: the call is no longer pending
			close(call.done)
		} else {
			c.log.Debug("reply to no pending request dropped", "id", f.ID, "type", f.Type)
		}
		return
	}
	switch f.Type {
	case protocol.TPong:
		return
	case protocol.TError:
		c.mu.Lock()
		c.dropped = f.AsError()
		c.mu.Unlock()
	}
	select {
	case c.events <- f:
	case <-c.stop:
	}
}

// finish records why the connection ended and releases every waiter.
func (c *Conn) finish(readErr error) {
	c.mu.Lock()
	c.err = c.whyLocked(readErr)
	c.pending = nil
	closed := c.closed
	c.mu.Unlock()
	if !closed {
		// Make sure the socket is gone; after a read error it normally is.
		_ = c.ws.CloseNow()
	}
	c.log.Debug("connection ended", "err", c.err)
	close(c.events)
	close(c.done)
}

// whyLocked explains the end of the connection, most telling reason first.
func (c *Conn) whyLocked(readErr error) error {
	switch {
	case c.dropped != nil:
		return fmt.Errorf("server ended the session: %w", c.dropped)
	case c.closed:
		return ErrClosed
	case c.cause != nil:
		return c.cause
	case errors.Is(readErr, websocket.ErrMessageTooBig):
		return fmt.Errorf("connection to %s lost: the server sent a message larger than %d bytes", c.url, c.readLimit)
	}
	var ce websocket.CloseError
	if errors.As(readErr, &ce) {
		msg := "the server closed the connection"
		if ce.Code != websocket.StatusNormalClosure && ce.Code != websocket.StatusGoingAway {
			msg += fmt.Sprintf(" (status %d)", int(ce.Code))
		}
		if ce.Reason != "" {
			msg += ": " + ce.Reason
		}
		return errors.New(msg)
	}
	return fmt.Errorf("connection to %s lost: %w", c.url, readErr)
}

// keepalive sends a ping every interval and ends the connection if a pong
// does not come back in time.
func (c *Conn) keepalive(every time.Duration) {
	defer c.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.life.Done():
			return
		case <-c.done:
			return
		case <-t.C:
		}
		_, err := c.Request(c.life, &protocol.Frame{Type: protocol.TPing})
		var te *TimeoutError
		var pe *protocol.Error
		switch {
		case err == nil, errors.As(err, &pe):
			// A refusal still proves the server is alive.
		case errors.As(err, &te):
			c.abort(&TimeoutError{After: c.replyTimeout, Op: "waiting for a keepalive pong from " + c.url})
			return
		default:
			return // closed or ended: the reader has the reason
		}
	}
}
