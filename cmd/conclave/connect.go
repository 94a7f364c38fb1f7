package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// keepaliveEvery is how often long-lived connections (tail) ping.
const keepaliveEvery = 20 * time.Second

// serverFlag is the --server flag of verbs that talk to one registered
// server.
type serverFlag struct {
	Server string `name:"server" env:"CONCLAVE_SERVER" placeholder:"URL" help:"The server, as registered; may be left out when exactly one server is registered."`
}

// session is an authenticated connection for one verb and the
// registration it was made with.
type session struct {
	conn *control.Conn
	srv  identity.Server
	key  ed25519.PrivateKey
}

// connectOptions are the knobs of connect.
type connectOptions struct {
	handle    string        // "" = cli-<pid>
	keepalive time.Duration // 0 = none
}

// connect logs in to the registered server that serverURL picks (see
// identity.Config.SelectServer), pinned to the id recorded at
// registration. A registration made before ids were recorded is pinned
// now, to the id the server presents (trust on first use).
func (g *Globals) connect(ctx context.Context, serverURL string, co connectOptions) (*session, error) {
	dir, cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	srv, err := cfg.SelectServer(serverURL)
	if err != nil {
		return nil, err
	}
	key, err := g.loadKey(dir)
	if err != nil {
		return nil, err
	}
	conn, err := g.dial(ctx, srv, key, co)
	if err != nil {
		return nil, err
	}
	if srv.ServerID == "" {
		srv.ServerID = conn.ServerID()
		if err := cfg.Save(dir); err != nil {
			g.Logger.Warn("could not record the server id", "server", srv.URL, "err", err)
		}
	}
	return &session{conn: conn, srv: *srv, key: key}, nil
}

// redialer is the Dial of a long-lived verb's control.Session or
// Subscription (tail, approvals --watch): the first call logs in as
// connect does, each later one like the latest login (same key and server
// pin). Only the session's goroutine calls dial after the first.
type redialer struct {
	g      *Globals
	server string
	co     connectOptions
	first  *session // the first login, written once by the first dial
	last   *session
}

func (r *redialer) dial(ctx context.Context) (*control.Conn, error) {
	var s *session
	var err error
	if r.last == nil {
		s, err = r.g.connect(ctx, r.server, r.co)
	} else {
		srv := r.last.srv
		var conn *control.Conn
		conn, err = r.g.dial(ctx, &srv, r.last.key, r.co)
		s = &session{conn: conn, srv: srv, key: r.last.key}
	}
	if err != nil {
		return nil, err
	}
	if r.first == nil {
		r.first = s
	}
	r.last = s
	return s.conn, nil
}

// dial logs in to srv with key.
func (g *Globals) dial(ctx context.Context, srv *identity.Server, key ed25519.PrivateKey, co connectOptions) (*control.Conn, error) {
	handle := co.handle
	if handle == "" {
		handle = oneShotHandle()
	}
	conn, err := control.Dial(ctx, &control.Options{
		URL:            srv.URL,
		Key:            key,
		Session:        handle,
		PinnedServerID: srv.ServerID,
		ClientName:     g.clientName(),
		Keepalive:      co.keepalive,
		Logger:         g.Logger,
	})
	var pe *protocol.Error
	if errors.As(err, &pe) {
		if pe.Reason == protocol.ReasonUnknownKey {
			return nil, &notEnrolledError{url: srv.URL, machine: srv.Machine, err: err}
		}
		return nil, fmt.Errorf("log in to %s: %w", srv.URL, err)
	}
	return conn, err
}

// notEnrolledError is a login refused because this machine's key is not
// enrolled (any more): it says how to enroll it again.
type notEnrolledError struct {
	url, machine string
	err          error
}

func (e *notEnrolledError) Error() string {
	return fmt.Sprintf("log in to %s: %v: this machine's key is not enrolled there (revoked with machine remove, or its user removed); "+
		"to re-enroll it, run on a machine still enrolled: conclave machine add %s --pubkey \"<this machine's conclave key>\", "+
		"then here: conclave register --existing --server %s", e.url, e.err, e.machine, e.url)
}

func (e *notEnrolledError) Unwrap() error { return e.err }

// loadKey reads the machine key, printing the notice of a one-time import
// of the Rust version's key file.
func (g *Globals) loadKey(dir string) (ed25519.PrivateKey, error) {
	key, notice, err := identity.LoadKey(dir)
	if err != nil {
		return nil, err
	}
	g.notice(notice)
	return key, nil
}

// request sends one request on s and waits for its reply.
func (s *session) request(ctx context.Context, f *protocol.Frame) (*protocol.Frame, error) {
	return s.conn.Request(ctx, f)
}

// expect checks that a reply has the type a request gets on success.
func expect(r *protocol.Frame, typ string) (*protocol.Frame, error) {
	if r.Type != typ {
		return nil, fmt.Errorf("unexpected response from the server: %s (wanted %s)", r.Type, typ)
	}
	return r, nil
}

// oneShot connects to the server serverURL picks, sends f, checks that the
// reply has type want, and closes the connection.
func (g *Globals) oneShot(ctx context.Context, serverURL string, f *protocol.Frame, want string) (*protocol.Frame, *identity.Server, error) {
	s, err := g.connect(ctx, serverURL, connectOptions{})
	if err != nil {
		return nil, nil, err
	}
	defer s.conn.Close()
	r, err := s.request(ctx, f)
	if err != nil {
		return nil, nil, err
	}
	r, err = expect(r, want)
	return r, &s.srv, err
}
