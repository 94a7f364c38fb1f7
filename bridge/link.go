package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// Link timing (behaviour.md §4.7, SPEC.md §6).
const (
	backoffBase  = 200 * time.Millisecond
	backoffMax   = 30 * time.Second
	stableUptime = 30 * time.Second // uptime that resets the backoff and the breaker
	keepalive    = 20 * time.Second
	callWait     = 10 * time.Second // how long a tool call waits for a link
	flapTrips    = 3                // rapid drops in a row that trip the breaker
)

// linkState is where a link is in its life.
type linkState int

const (
	stateConnecting linkState = iota // dialling
	stateUp                          // connected and authenticated
	stateDown                        // waiting to dial again
	stateDisabled                    // a duplicate URL: stopped for good
)

// link is the bridge's policy over its connection to one server, a
// control.Session that dials, re-dials with backoff, rejoins the channels
// and keeps their watermarks: the link picks the handle and the pin of
// each dial, claims the server id (a duplicate URL disables it), tells the
// session about outages, refusals, renames and unsubscriptions, runs the
// flapping breaker, forwards permission requests and routes deliveries by
// level. Its methods are safe for concurrent use; run is its goroutine.
type link struct {
	b    *Bridge
	url  string
	log  *slog.Logger
	sess *control.Session // the channels to rejoin and their watermarks

	// mu guards the fields below.
	mu        sync.Mutex
	pin       string // the server id dials are pinned to ("" = none yet)
	state     linkState
	conn      *control.Conn // while up
	changed   chan struct{} // closed and replaced at every state change
	everUp    bool
	lastErr   error     // why the last dial failed or the connection ended
	retryAt   time.Time // next dial, while down
	admin     bool      // the server's last established said admin:true
	canonical string    // while disabled: the URL this one duplicates
	dialled   map[*control.Conn]dialledAs
	permSent  map[string]bool // permission requests sent on the current connection, by lower-case id

	permWake chan struct{}  // a permission request is waiting to be forwarded
	sends    sync.WaitGroup // forwardPermissions runs; each ends soon after its connection closes
}

// dialledAs is the handle a connection logged in with, until its up is
// handled.
type dialledAs struct {
	name string
	gen  int
}

func newLink(b *Bridge, url, pin string) *link {
	l := &link{
		b: b, url: url, pin: pin,
		log:      b.log.With("server", url),
		changed:  make(chan struct{}),
		dialled:  make(map[*control.Conn]dialledAs),
		permSent: make(map[string]bool),
		permWake: make(chan struct{}, 1),
	}
	sess, err := control.NewSession(&control.SessionOptions{
		Dial: l.dial,
		// Every failure is retried (a superseded session is the flapping
		// breaker's to diagnose), except a duplicate URL.
		Retry:        func(err error) bool { return !errors.As(err, new(*duplicateError)) },
		Backoff:      newBackoff(),
		StableUptime: stableUptime,
		Logger:       l.log,
	})
	if err != nil {
		panic(err) // unreachable: Dial is set
	}
	l.sess = sess
	return l
}

func (l *link) setStateLocked(s linkState) {
	l.state = s
	close(l.changed)
	l.changed = make(chan struct{})
}

// newBackoff returns the redial delays: 200 ms doubling to 30 s, each
// with control.Backoff's jitter.
func newBackoff() control.Backoff { return control.Backoff{Min: backoffBase, Max: backoffMax} }

// flapper is the flapping breaker's state (behaviour.md §4.8); only run
// touches it.
type flapper struct {
	rapid        int    // drops in a row within stableUptime of connecting
	quiet        bool   // an explicit handle was diagnosed: no more drop notices
	disconnected bool   // a Disconnected notice is out and not yet answered
	refused      bool   // the handle-in-use notice is out (handleclaim.go)
	given        string // the suffixed handle the session was last told of
	gen          int    // the handle generation the current connection dialled with
}

// run runs the session and applies the link's policy to its events until
// ctx ends or the link turns out to be a duplicate.
func (l *link) run(ctx context.Context) {
	var fl flapper
	var wg sync.WaitGroup
	defer l.sends.Wait()
	defer wg.Wait()
	wg.Go(func() { _ = l.sess.Run(ctx) }) // its end comes out of Next
	wg.Go(func() { l.forwarder(ctx) })
	for {
		ev, err := l.sess.Next(context.Background())
		if err != nil {
			var de *duplicateError
			if errors.As(err, &de) {
				l.disable(de.canonical, de.id)
			}
			return
		}
		l.handle(ev, &fl)
	}
}

// dial logs in with the current handle, pinned to the server id the link
// knows, and claims the server's id: a URL whose server another link
// already reaches is a duplicate, not retried.
func (l *link) dial(ctx context.Context) (*control.Conn, error) {
	name, gen := l.b.handle.current()
	l.mu.Lock()
	pin := l.pin
	l.mu.Unlock()
	conn, err := control.Dial(ctx, &control.Options{
		URL:              l.url,
		Key:              l.b.opts.Key,
		Session:          name,
		SessionDefaulted: !l.b.handle.explicit, // the server gives a latecomer name-2
		PinnedServerID:   pin,
		// Claim the server's id before logging in: if another URL
		// reaches the same server, logging in here would supersede
		// that link's session.
		CheckServerID: func(id string) error {
			if canonical, dup := l.b.claim(id, l.url); dup {
				return &duplicateError{canonical: canonical, id: id}
			}
			return nil
		},
		ClientName: l.b.clientName,
		Role:       protocol.RoleBridge, // the server never lets an agent's session answer a permission request
		Keepalive:  keepalive,
		Logger:     l.log,
	})
	if err != nil {
		return nil, err
	}
	if canonical, dup := l.b.claim(conn.ServerID(), l.url); dup {
		conn.Close()
		return nil, &duplicateError{canonical: canonical, id: conn.ServerID()}
	}
	l.mu.Lock()
	l.pin = conn.ServerID()
	l.dialled[conn] = dialledAs{name: name, gen: gen}
	l.mu.Unlock()
	return conn, nil
}

// handle applies the link's policy to one event of the session.
func (l *link) handle(ev control.Event, fl *flapper) {
	switch ev.Kind {
	case control.EventUp:
		l.mu.Lock()
		as := l.dialled[ev.Conn]
		delete(l.dialled, ev.Conn)
		l.mu.Unlock()
		fl.gen = as.gen
		l.handleGiven(ev.Conn, as.name, fl)
		l.up(ev.Conn, fl)
	case control.EventDialFailed:
		name, _ := l.b.handle.current()
		l.handleInUse(ev.Err, name, fl)
		l.log.Warn("connect failed; retrying", "err", ev.Err, "retry_in", ev.RetryIn)
		l.setDown(ev.Err, ev.RetryIn)
	case control.EventLost:
		l.log.Info("connection lost; reconnecting", "err", ev.Err, "uptime", ev.Uptime.Round(time.Millisecond), "retry_in", ev.RetryIn)
		l.setDown(ev.Err, ev.RetryIn)
		l.dropped(ev.Err, ev.Uptime, fl.gen, fl)
	case control.EventJoined:
		l.b.refreshTools()
	case control.EventJoinRefused:
		l.log.Warn("join refused", "channel", ev.Channel, "err", ev.Err)
		what := "--join " + code(ev.Channel)
		if ev.Rejoin {
			what = "re-joining " + code(ev.Channel)
		}
		l.b.tell(notice(l.url, kindError, ev.Channel, what+" on "+code(l.url)+" failed: "+ev.Err.Error()))
		l.b.refreshTools()
	default:
		if ev.Frame != nil {
			l.event(ev.Frame)
		}
	}
}

// forwarder forwards permission requests on the current connection when
// woken, until ctx ends.
func (l *link) forwarder(ctx context.Context) {
	for {
		select {
		case <-l.permWake:
			l.mu.Lock()
			conn := l.conn
			l.mu.Unlock()
			if conn != nil {
				l.sends.Go(func() { l.forwardPermissions(conn) })
			}
		case <-ctx.Done():
			return
		}
	}
}

// duplicateError ends a dial to a URL whose server another link already
// reaches (canonical).
type duplicateError struct{ canonical, id string }

func (e *duplicateError) Error() string {
	return "the server at this URL is already connected as " + e.canonical + " (id " + e.id + ")"
}

// setDown records a failed dial or a lost connection.
func (l *link) setDown(err error, retryIn time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conn = nil
	l.lastErr = err
	l.retryAt = time.Now().Add(retryIn)
	l.setStateLocked(stateDown)
}

// up records a new connection and tells the session if it had been told
// of an outage. The session rejoins the channels meanwhile.
func (l *link) up(conn *control.Conn, fl *flapper) {
	l.mu.Lock()
	l.conn = conn
	l.everUp = true
	l.lastErr = nil
	l.admin = conn.Admin()
	clear(l.permSent) // a new session: the server forgot the old one's requests
	l.setStateLocked(stateUp)
	l.mu.Unlock()
	l.log.Info("connected", "session", conn.Path(), "admin", conn.Admin())
	if fl.disconnected {
		fl.disconnected = false
		l.b.tell(notice(l.url, kindLink, "",
			"Reconnected to "+code(l.url)+" as "+code(conn.Path())+
				"; your channels are being re-joined. Call catch_up on them to read what was posted while the link was down."))
	}
	l.b.refreshTools()
	l.wakePermissions() // re-send what Claude Code still waits on
}

// event handles one unprompted frame, which the session has applied
// already (watermark, rename, unsubscription): a delivery, a notice, or
// an error nobody waits for.
func (l *link) event(f *protocol.Frame) {
	switch f.Type {
	case protocol.TChannelMsg:
		level := l.b.policy.channel(l.url, f.Channel)
		if level == identity.Mute {
			return
		}
		body, sealed := deliveryBody(f)
		m := &inbound{server: l.url, channel: f.Channel, from: f.From, body: body, sealed: sealed, level: level}
		var key entryKey
		if f.Seq != 0 {
			key = entryKey{server: l.url, scope: "#" + f.Channel, seq: f.Seq}
		}
		l.b.deliver(m.notification(), entry{key: key, level: level, scope: "#" + f.Channel + " on " + code(l.url)})
	case protocol.TWhisper:
		level := l.b.policy.whisper(l.url)
		if level == identity.Mute {
			return
		}
		body, sealed := deliveryBody(f)
		m := &inbound{server: l.url, from: f.From, body: body, sealed: sealed, level: level}
		var key entryKey
		if f.Seq != 0 {
			key = entryKey{server: l.url, scope: "@" + f.From, seq: f.Seq}
		}
		l.b.deliver(m.notification(), entry{key: key, level: level, scope: "whispers on " + code(l.url)})
	case protocol.TPermissionVerdict:
		l.b.onVerdict(l, f)
	case protocol.TUnsubscribed:
		reason := f.Reason
		if reason == "" {
			reason = "no reason given"
		}
		l.b.tell(notice(l.url, kindUnsubscribed, f.Channel,
			"You are no longer in "+code(f.Channel)+" on "+code(l.url)+": "+reason+
				". The bridge will not re-join it (not even for --join) until it restarts; join_channel joins it again if you still may."))
		l.b.refreshTools()
	case protocol.TRenamed:
		if f.NewName == "" {
			return
		}
		l.b.policy.rename(l.url, f.Channel, f.NewName)
		l.b.tell(notice(l.url, kindRenamed, f.NewName,
			code(f.Channel)+" on "+code(l.url)+" was renamed to "+code(f.NewName)+
				"; the bridge follows it (use the new name from now on)."))
		l.b.refreshTools()
	case protocol.TError:
		if f.Code == protocol.CodeUnauthorized {
			// The server is dropping this session; the reason comes with
			// the Disconnected notice.
			return
		}
		l.b.tell(notice(l.url, kindError, "",
			"the server at "+code(l.url)+" reported an error: "+string(f.Code)+": "+f.Message))
	}
}

// dropped applies the flapping breaker to a lost connection and sends the
// notice it calls for, if any.
func (l *link) dropped(cause error, uptime time.Duration, gen int, fl *flapper) {
	if uptime < stableUptime {
		fl.rapid++
	} else {
		fl.rapid = 0
		fl.quiet = false
	}
	reason := "connection lost"
	if cause != nil {
		reason = cause.Error()
	}
	if fl.rapid >= flapTrips && !fl.quiet {
		fl.rapid = 0
		if l.b.handle.explicit {
			fl.quiet = true
			name, _ := l.b.handle.current()
			l.b.tell(notice(l.url, kindLink, "",
				"The link to "+code(l.url)+" keeps dropping right after connecting ("+reason+
					"). Another live session probably uses the same handle "+code(name)+
					", and each connection supersedes the other. Start one of them with a distinct `--as HANDLE`. "+
					"The bridge keeps reconnecting but reports no more drops until the link is stable."))
			return
		}
		if old, renamed, ok := l.b.handle.rename(gen); ok {
			l.log.Warn("handle renamed after repeated drops", "old", old, "new", renamed)
			l.b.tell(notice(l.url, kindLink, "",
				"The link to "+code(l.url)+" kept dropping right after connecting: another session (probably in the same directory) "+
					"uses the handle "+code(old)+". This session now uses the handle "+code(renamed)+
					"; start the bridge with `--as HANDLE` to pin a name of your own."))
		}
		return
	}
	if fl.quiet || fl.disconnected {
		return
	}
	fl.disconnected = true
	l.b.tell(notice(l.url, kindLink, "",
		"Disconnected from "+code(l.url)+": "+reason+
			". The bridge is reconnecting; messages posted meanwhile are not delivered live, and tool calls to this server fail until it is back."))
}

// disable stops a link that reached the same server as another URL.
func (l *link) disable(canonical, serverID string) {
	l.mu.Lock()
	l.canonical = canonical
	l.conn = nil
	l.admin = false
	l.setStateLocked(stateDisabled)
	l.mu.Unlock()
	l.log.Warn("duplicate server URL disabled", "canonical", canonical, "server_id", serverID)
	l.b.tell(notice(l.url, kindLink, "", duplicateText(l.url, canonical)))
	l.b.refreshTools()
}

func duplicateText(url, canonical string) string {
	return code(url) + " is the same server as " + code(canonical) + ", so the link to " + code(url) +
		" is disabled. Use server " + code(canonical) + " instead."
}

// disabled reports whether the link is a disabled duplicate.
func (l *link) disabled() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state == stateDisabled
}

// await returns the link's connection, waiting up to callWait while it
// connects. It fails at once for a link that will not dial again within
// that time.
func (l *link) await(ctx context.Context) (*control.Conn, error) {
	deadline := time.Now().Add(callWait)
	timer := time.NewTimer(callWait)
	defer timer.Stop()
	for {
		l.mu.Lock()
		state, conn, changed, lastErr := l.state, l.conn, l.changed, l.lastErr
		everUp, canonical, retryAt := l.everUp, l.canonical, l.retryAt
		l.mu.Unlock()
		switch state {
		case stateUp:
			return conn, nil
		case stateDisabled:
			return nil, errors.New(duplicateText(l.url, canonical))
		case stateDown:
			if retryAt.After(deadline) {
				return nil, l.downErr(everUp, lastErr)
			}
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil, l.downErr(everUp, lastErr)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (l *link) downErr(everUp bool, lastErr error) error {
	why := ""
	if lastErr != nil {
		why = " (" + lastErr.Error() + ")"
	}
	if !everUp {
		return fmt.Errorf("not connected to %s yet%s; the bridge keeps trying — retry in a moment", code(l.url), why)
	}
	return fmt.Errorf("the link to %s is down%s; the bridge is reconnecting — retry in a moment", code(l.url), why)
}
