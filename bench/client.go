package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/protocol"
)

// readLimit caps one message from the server; the server coalesces up to
// 256 frames into one message.
const readLimit = 64 << 20

// sessionHandle is the session handle of every bench session.
const sessionHandle = "s"

// client is one load-generating connection. It speaks the protocol
// directly over coder/websocket: the handshake and setup requests decode
// frames, the hot path only finds the body of a delivery and reads the
// message number and send time the publisher put there.
type client struct {
	conn *websocket.Conn
	user string
	key  ed25519.PrivateKey
	pub  bool // a publisher: also counts acks and errors

	total       atomic.Uint64 // deliveries received
	measured    atomic.Uint64 // deliveries received while measuring
	acks        atomic.Uint64
	rateLimited atomic.Uint64
	refused     atomic.Uint64 // other error replies to posts
	bad         atomic.Uint64 // lines the reader did not understand

	lat     hist  // owned by the reader goroutine until done is closed
	readErr error // why the reader stopped; read after done
	done    chan struct{}
}

// dialWS opens a WebSocket to url on loopback (or wherever url points).
func dialWS(ctx context.Context, url string, hc *http.Client) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		Subprotocols: []string{protocol.Subprotocol},
		HTTPClient:   hc,
	})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(readLimit)
	return conn, nil
}

// send writes one frame as one message.
func send(ctx context.Context, conn *websocket.Conn, f *protocol.Frame) error {
	b, err := protocol.Encode(f)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return conn.Write(wctx, websocket.MessageText, b)
}

// frameReader reads frames one at a time during setup, keeping the rest
// of a coalesced message for the next call.
type frameReader struct {
	conn    *websocket.Conn
	pending []*protocol.Frame
}

func (r *frameReader) next(ctx context.Context) (*protocol.Frame, error) {
	for len(r.pending) == 0 {
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_, b, err := r.conn.Read(rctx)
		cancel()
		if err != nil {
			return nil, err
		}
		fs, err := protocol.DecodeMessage(b)
		if err != nil {
			return nil, fmt.Errorf("undecodable message from the server: %w", err)
		}
		r.pending = fs
	}
	f := r.pending[0]
	r.pending = r.pending[1:]
	return f, nil
}

// request sends f (with id) and waits for the reply echoing the id.
func (r *frameReader) request(ctx context.Context, f *protocol.Frame) (*protocol.Frame, error) {
	if err := send(ctx, r.conn, f); err != nil {
		return nil, err
	}
	for {
		g, err := r.next(ctx)
		if err != nil {
			return nil, err
		}
		if g.ID == f.ID {
			if g.Type == protocol.TError {
				return g, &protocol.Error{Code: g.Code, Message: g.Message}
			}
			return g, nil
		}
		if g.Type == protocol.TError {
			return g, &protocol.Error{Code: g.Code, Message: g.Message}
		}
	}
}

// login connects and authenticates c (registering it first if register
// is set). On success c.conn is an established session.
func (c *client) login(ctx context.Context, url string, hc *http.Client, register bool) (*frameReader, error) {
	conn, err := dialWS(ctx, url, hc)
	if err != nil {
		return nil, err
	}
	fr := &frameReader{conn: conn}
	fail := func(err error) (*frameReader, error) {
		conn.CloseNow()
		return nil, fmt.Errorf("%s: %w", c.user, err)
	}
	if err := send(ctx, conn, &protocol.Frame{Type: protocol.THello, Version: protocol.Version, Session: sessionHandle, Client: "conclave-bench"}); err != nil {
		return fail(err)
	}
	ch, err := fr.next(ctx)
	if err != nil {
		return fail(err)
	}
	if ch.Type != protocol.TChallenge {
		return fail(replyErr(ch, protocol.TChallenge))
	}
	pub := c.key.Public().(ed25519.PublicKey)
	if register {
		if err := send(ctx, conn, &protocol.Frame{Type: protocol.TRegister, Username: c.user, Machine: "m", Pubkey: pub}); err != nil {
			return fail(err)
		}
	}
	sig := protocol.SignAuth(c.key, ch.ServerID, ch.Nonce, sessionHandle)
	if err := send(ctx, conn, &protocol.Frame{Type: protocol.TAuth, Pubkey: pub, Signature: sig}); err != nil {
		return fail(err)
	}
	est, err := fr.next(ctx)
	if err != nil {
		return fail(err)
	}
	if est.Type != protocol.TEstablished {
		return fail(replyErr(est, protocol.TEstablished))
	}
	c.conn = conn
	return fr, nil
}

func replyErr(f *protocol.Frame, want string) error {
	if f.Type == protocol.TError {
		return &protocol.Error{Code: f.Code, Message: f.Message}
	}
	return fmt.Errorf("got %s, want %s", f.Type, want)
}

// Markers the reader looks for. The server encodes a frame's fields in
// the order of protocol.Frame, so "type" comes first.
var (
	prefixMsg   = []byte(`{"type":"channel_msg"`)
	prefixAck   = []byte(`{"type":"ack"`)
	prefixError = []byte(`{"type":"error"`)
	bodyKey     = []byte(`"body":"`)
)

// stampLen is the message number and send time at the start of a body:
// two 16-digit hex numbers.
const stampLen = 32

// bufPool holds read buffers: a reader takes one only while it handles a
// message, so a few serve a thousand clients.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

// readLoop reads messages until the connection ends, counting deliveries
// into r. It closes c.done when it returns.
func (c *client) readLoop(r *load) {
	defer close(c.done)
	ctx := context.Background()
	for {
		_, rd, err := c.conn.Reader(ctx)
		if err != nil {
			c.readErr = err
			return
		}
		bp := bufPool.Get().(*[]byte)
		buf, err := readMessage(rd, (*bp)[:0])
		if err != nil {
			*bp = buf
			bufPool.Put(bp)
			c.readErr = err
			return
		}
		now := r.clock()
		for b := buf; len(b) > 0; {
			line := b
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				line, b = b[:i], b[i+1:]
			} else {
				b = nil
			}
			c.line(r, line, now)
		}
		*bp = buf
		bufPool.Put(bp)
	}
}

// readMessage appends the rest of the message from rd to buf.
func readMessage(rd io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func (c *client) line(r *load, line []byte, now int64) {
	if bytes.HasPrefix(line, prefixMsg) {
		j := bytes.Index(line, bodyKey)
		if j < 0 || len(line) < j+len(bodyKey)+stampLen {
			c.bad.Add(1)
			return
		}
		p := line[j+len(bodyKey):]
		seq, ok1 := parseHex16(p[:16])
		stamp, ok2 := parseHex16(p[16:32])
		if !ok1 || !ok2 {
			c.bad.Add(1)
			return
		}
		c.total.Add(1)
		if r.measuring.Load() {
			c.measured.Add(1)
			c.lat.record(now - int64(stamp))
		}
		r.delivered(seq)
		return
	}
	if !c.pub || len(line) == 0 {
		return
	}
	if bytes.HasPrefix(line, prefixAck) {
		c.acks.Add(1)
		return
	}
	if bytes.HasPrefix(line, prefixError) {
		f, err := protocol.Decode(line)
		if err != nil {
			c.bad.Add(1)
			return
		}
		if f.Code == protocol.CodeRateLimited {
			c.rateLimited.Add(1)
		} else {
			c.refused.Add(1)
			r.noteRefusal(f)
		}
		if seq, ok := parseHex16([]byte(f.ID)); ok && len(f.ID) == 16 {
			r.refused(seq)
		}
	}
}

const hexDigits = "0123456789abcdef"

// putHex16 writes v as 16 lower-case hex digits into b.
func putHex16(b []byte, v uint64) {
	for i := 15; i >= 0; i-- {
		b[i] = hexDigits[v&0xf]
		v >>= 4
	}
}

func parseHex16(b []byte) (uint64, bool) {
	if len(b) < 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b[:16] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return v, true
}
