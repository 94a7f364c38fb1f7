package control

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// Defaults for [Options].
const (
	DefaultDialTimeout  = 10 * time.Second
	DefaultReplyTimeout = 15 * time.Second
)

// ServerIDHeader is the HTTP header of the 101 response that names the
// server's id.
const ServerIDHeader = "X-Conclave-Server-Id"

// readLimit caps one WebSocket message from the server until it has
// announced its own largest message (established.max_message), and for a
// server that does not announce it. coder/websocket's default is 32 KiB,
// less than one full-size message body.
const readLimit = 64 << 20

// maxReadLimit bounds what a server's announcement can make the read limit.
const maxReadLimit = 1 << 30

// readLimitFor returns the read limit for a session established with est:
// the largest message the server says it sends, or readLimit for a server
// that does not say.
func readLimitFor(est *protocol.Frame) int64 {
	if est.MaxMessage <= 0 {
		return readLimit
	}
	return int64(min(max(est.MaxMessage, protocol.MaxFramePreAuth), maxReadLimit))
}

// Options configures [Dial]. The zero value of each field but URL, Key and
// Session means its default. Dial copies the struct; later changes to it
// have no effect on the connection.
type Options struct {
	// URL is the server's address, ws://host:port or wss://host (TLS with
	// Go's default configuration: the system cert pool, which honours
	// SSL_CERT_FILE and SSL_CERT_DIR).
	URL string

	// Key is this machine's Ed25519 key.
	Key ed25519.PrivateKey

	// Session is the session handle announced in hello: the last part of
	// the user/machine/session path. One-shot CLI verbs use "cli-<pid>".
	Session string

	// SessionDefaulted says Session was not chosen by the user (the
	// bridge's directory name): if another process holds it, the server
	// gives this session the next free Session-2, Session-3, … instead
	// of refusing it. [Conn.Path] is the path the server gave.
	SessionDefaulted bool

	// Instance is sent as hello.instance: the same on every connection
	// of one process, so that the server lets a reconnection take back
	// the process's own session (one whose drop it has not noticed yet)
	// and tells another process's session apart. Default
	// [ProcessInstance].
	Instance string

	// PinnedServerID is the server id recorded when this machine
	// registered. Dial refuses to sign for a server that presents another
	// id. Empty means no check (a first registration).
	PinnedServerID string

	// Register, if not nil, claims Username and enrolls this key as
	// Machine before authenticating.
	Register *Registration

	// CheckServerID, if not nil, is called with the server's id after the
	// pin check and before anything is signed; an error ends the dial with
	// that error and nothing sent. The bridge uses it to notice a second
	// URL for a server it is already connected to, before logging in
	// there would supersede its own session.
	CheckServerID func(id string) error

	// ClientName is sent in hello as free text, e.g. "conclave-cli/1.2.0".
	// Default "conclave-control".
	ClientName string

	// Role is sent as hello.role: empty for a person's client, or
	// protocol.RoleBridge for a session an agent drives (the bridge), which
	// the server never lets answer a permission request.
	Role string

	// DialTimeout bounds connecting, the WebSocket upgrade and the whole
	// handshake. Default DefaultDialTimeout (10 s).
	DialTimeout time.Duration

	// ReplyTimeout bounds each request's wait for its reply. Default
	// DefaultReplyTimeout (15 s).
	ReplyTimeout time.Duration

	// Keepalive, if positive, sends a ping request at that interval; a
	// ping whose pong does not arrive within ReplyTimeout ends the
	// connection. Zero sends none. tail and the bridge use 20 s.
	Keepalive time.Duration

	// Logger receives debug logs of the traffic (frame types and ids,
	// never bodies or keys). Nil discards them.
	Logger *slog.Logger
}

// Registration names the account and machine that Dial registers.
type Registration struct {
	Username string
	Machine  string
}

// withDefaults returns a copy of o with defaults filled in, after checking
// the fields that have no default.
func (o *Options) withDefaults() (Options, error) {
	c := *o
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ReplyTimeout <= 0 {
		c.ReplyTimeout = DefaultReplyTimeout
	}
	if c.ClientName == "" {
		c.ClientName = "conclave-control"
	}
	if c.Instance == "" {
		c.Instance = ProcessInstance()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if err := checkURL(c.URL); err != nil {
		return c, err
	}
	if len(c.Key) != ed25519.PrivateKeySize {
		return c, errors.New("no usable machine key")
	}
	if err := protocol.CheckName(c.Session); err != nil {
		return c, fmt.Errorf("invalid session handle %q: %w", c.Session, err)
	}
	if r := c.Register; r != nil {
		if err := protocol.CheckName(r.Username); err != nil {
			return c, fmt.Errorf("invalid username %q: %w", r.Username, err)
		}
		if err := protocol.CheckName(r.Machine); err != nil {
			return c, fmt.Errorf("invalid machine name %q: %w", r.Machine, err)
		}
	}
	return c, nil
}

// checkURL accepts ws:// and wss:// URLs (and their http:// and https://
// spellings, which coder/websocket maps to them) with a host.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid server URL %q: %v", s, err)
	}
	switch u.Scheme {
	case "ws", "wss", "http", "https":
	default:
		return fmt.Errorf("invalid server URL %q: want ws://host:port or wss://host", s)
	}
	if u.Host == "" {
		return fmt.Errorf("invalid server URL %q: no host", s)
	}
	return nil
}

// Dial connects to the server at opts.URL and authenticates, registering
// first if opts.Register is set. The whole of it is bounded by
// opts.DialTimeout; ctx can end it sooner.
//
// Errors: a refusal sent by the server is a [*protocol.Error]; a server
// whose id differs from opts.PinnedServerID gives an error wrapping
// [identity.ErrServerIDMismatch] (and nothing is signed); running out of
// time gives a [*TimeoutError].
func Dial(ctx context.Context, opts *Options) (*Conn, error) {
	if opts == nil {
		return nil, errors.New("control: Dial needs options")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()

	// A zero http.Client uses http.DefaultTransport: proxies from the
	// environment and TLS with the system roots.
	ws, resp, err := websocket.Dial(hctx, o.URL, &websocket.DialOptions{
		Subprotocols: []string{protocol.Subprotocol},
	})
	if err != nil {
		if te := o.timedOut(ctx, hctx); te != nil {
			return nil, te
		}
		return nil, dialError(o.URL, resp, err)
	}
	ws.SetReadLimit(readLimit)
	h := &handshake{ws: ws, o: &o, headerID: resp.Header.Get(ServerIDHeader)}
	est, leftover, err := h.run(hctx)
	if err != nil {
		ws.CloseNow()
		if te := o.timedOut(ctx, hctx); te != nil {
			return nil, te
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect to %s: %w", o.URL, ctx.Err())
		}
		return nil, err
	}
	return newConn(ws, &o, est, leftover), nil
}

// timedOut returns the error for a handshake that ran out of time: hctx
// expired while the caller's ctx did not.
func (o *Options) timedOut(ctx, hctx context.Context) error {
	if ctx.Err() == nil && errors.Is(hctx.Err(), context.DeadlineExceeded) {
		return &TimeoutError{After: o.DialTimeout, Op: "connecting to " + o.URL}
	}
	return nil
}

// dialError turns a failed upgrade into one readable line.
func dialError(u string, resp *http.Response, err error) error {
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("connect to %s: the server answered HTTP %d instead of a WebSocket upgrade (is this a conclave server?)", u, resp.StatusCode)
	}
	// Keep the most specific cause: coder/websocket and net/http each add
	// a layer ("failed to WebSocket dial: failed to send handshake
	// request: Get …") that says nothing the URL does not.
	var op *net.OpError
	if errors.As(err, &op) {
		return fmt.Errorf("connect to %s: %w", u, op)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("connect to %s: %w", u, ue.Err)
	}
	return fmt.Errorf("connect to %s: %w", u, err)
}

// handshake runs the client side of the authentication handshake on a
// freshly upgraded connection.
type handshake struct {
	ws       *websocket.Conn
	o        *Options
	headerID string            // the server id from the 101 response
	queue    []*protocol.Frame // frames read but not yet consumed
}

// run performs hello → challenge → [register] auth → established. It
// returns the established frame and any frames that came in the same
// message after it.
func (h *handshake) run(ctx context.Context) (*protocol.Frame, []*protocol.Frame, error) {
	o := h.o
	err := h.send(ctx, &protocol.Frame{
		Type: protocol.THello, Version: protocol.Version, Session: o.Session, Client: o.ClientName,
		Role: o.Role, Instance: o.Instance, SessionDefaulted: o.SessionDefaulted,
	})
	if err != nil {
		return nil, nil, err
	}
	ch, err := h.expect(ctx, protocol.TChallenge)
	if err != nil {
		return nil, nil, err
	}
	if err := ch.Validate(); err != nil {
		return nil, nil, fmt.Errorf("connect to %s: the server sent a bad challenge: %v", o.URL, err)
	}
	if h.headerID != "" && h.headerID != ch.ServerID {
		return nil, nil, fmt.Errorf("connect to %s: the server's upgrade names id %s but its challenge names %s; refusing to authenticate: %w",
			o.URL, h.headerID, ch.ServerID, identity.ErrServerIDMismatch)
	}
	// Check the pin before anything is signed: a signature is bound to
	// the server id, but there is no reason to hand one to an impostor.
	if err := identity.CheckPin(&identity.Server{URL: o.URL, ServerID: o.PinnedServerID}, ch.ServerID); err != nil {
		return nil, nil, err
	}
	if o.CheckServerID != nil {
		if err := o.CheckServerID(ch.ServerID); err != nil {
			return nil, nil, err
		}
	}

	pub := o.Key.Public().(ed25519.PublicKey)
	if r := o.Register; r != nil {
		err := h.send(ctx, &protocol.Frame{
			Type: protocol.TRegister, Username: r.Username, Machine: r.Machine, Pubkey: pub,
		})
		if err != nil {
			return nil, nil, err
		}
	}
	err = h.send(ctx, &protocol.Frame{
		Type:      protocol.TAuth,
		Pubkey:    pub,
		Signature: protocol.SignAuth(o.Key, ch.ServerID, ch.Nonce, o.Session),
	})
	if err != nil {
		return nil, nil, err
	}
	est, err := h.expect(ctx, protocol.TEstablished)
	if err != nil {
		return nil, nil, err
	}
	if est.ServerID != "" && est.ServerID != ch.ServerID {
		return nil, nil, fmt.Errorf("connect to %s: the server changed its id during the handshake (%s, then %s)",
			o.URL, ch.ServerID, est.ServerID)
	}
	est.ServerID = ch.ServerID
	if _, err := protocol.ParseSessionPath(est.Path); err != nil {
		return nil, nil, fmt.Errorf("connect to %s: the server sent a bad session path: %v", o.URL, err)
	}
	o.Logger.Debug("session established", "session", est.Path)
	return est, h.queue, nil
}

func (h *handshake) send(ctx context.Context, f *protocol.Frame) error {
	h.o.Logger.Debug("frame sent", "type", f.Type)
	if err := h.ws.Write(ctx, websocket.MessageText, protocol.MustEncode(f)); err != nil {
		return fmt.Errorf("connect to %s: send %s: %w", h.o.URL, f.Type, err)
	}
	return nil
}

// expect returns the next frame if it has type typ. An error frame becomes
// a *protocol.Error; anything else is an error naming it.
func (h *handshake) expect(ctx context.Context, typ string) (*protocol.Frame, error) {
	for len(h.queue) == 0 {
		mt, data, err := h.ws.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("connect to %s: the server closed the connection during the handshake: %w", h.o.URL, err)
		}
		if mt != websocket.MessageText {
			continue
		}
		h.queue = append(h.queue, decodeFrames(data, h.o.Logger)...)
	}
	f := h.queue[0]
	h.queue = h.queue[1:]
	h.o.Logger.Debug("frame received", "type", f.Type)
	switch f.Type {
	case typ:
		return f, nil
	case protocol.TError:
		return nil, f.AsError()
	}
	return nil, fmt.Errorf("connect to %s: expected %s from the server, got %s", h.o.URL, typ, f.Type)
}

// decodeFrames splits a server message into frames. A frame that does not
// decode is logged and skipped; the others are still delivered.
func decodeFrames(data []byte, log *slog.Logger) []*protocol.Frame {
	var frames []*protocol.Frame
	eachFrame(data, log, func(f *protocol.Frame) { frames = append(frames, f) })
	return frames
}

// eachFrame hands each frame of a server message to fn, in order. A frame
// that does not decode is logged and skipped.
func eachFrame(data []byte, log *slog.Logger, fn func(*protocol.Frame)) {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		f, err := protocol.DecodeFromServer(line)
		if err != nil {
			log.Debug("undecodable frame from server skipped", "err", err)
			continue
		}
		fn(f)
	}
}
