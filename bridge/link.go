package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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

// watermark is catch_up's position in one channel: everything up to seq
// has been seen. synced says live deliveries may advance it (no outage or
// unfinished catch_up since).
type watermark struct {
	seq    uint64
	synced bool
}

// link is the bridge's connection to one server: it dials, re-dials with
// backoff and routes what the server sends. Its methods are safe for
// concurrent use; run is its one goroutine.
type link struct {
	b   *Bridge
	url string
	log *slog.Logger

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
	joined    map[string]bool
	autoJoin  []string // --join channels, in order; dropped after unsubscribed
	marks     map[string]*watermark
	permSent  map[string]bool // permission requests sent on the current connection, by lower-case id

	permWake chan struct{}  // a permission request is waiting to be forwarded
	sends    sync.WaitGroup // forwardPermissions runs; each ends soon after its connection closes
}

func newLink(b *Bridge, url, pin string) *link {
	return &link{
		b: b, url: url, pin: pin,
		log:      b.log.With("server", url),
		changed:  make(chan struct{}),
		joined:   make(map[string]bool),
		marks:    make(map[string]*watermark),
		permSent: make(map[string]bool),
		permWake: make(chan struct{}, 1),
	}
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
}

// run dials, serves and re-dials until ctx ends or the link turns out to
// be a duplicate.
func (l *link) run(ctx context.Context) {
	bo := newBackoff()
	var fl flapper
	var rejoins sync.WaitGroup // each ends soon after its connection closes
	defer rejoins.Wait()
	defer l.sends.Wait()
	for ctx.Err() == nil {
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
		if ctx.Err() != nil {
			if conn != nil {
				conn.Close()
			}
			return
		}
		var de *duplicateError
		if errors.As(err, &de) {
			l.disable(de.canonical, de.id)
			return
		}
		if err != nil {
			l.handleInUse(err, name, &fl)
			if !l.retry(ctx, &bo, err) {
				return
			}
			continue
		}
		if canonical, dup := l.b.claim(conn.ServerID(), l.url); dup {
			conn.Close()
			l.disable(canonical, conn.ServerID())
			return
		}
		upAt := time.Now()
		l.handleGiven(conn, name, &fl)
		if channels := l.up(conn, &fl); len(channels) > 0 {
			rejoins.Go(func() { l.rejoin(conn, channels) })
		}
		l.pump(ctx, conn)
		uptime := time.Since(upAt)
		cause := conn.Err()
		conn.Close()
		if ctx.Err() != nil {
			return
		}
		if uptime >= stableUptime {
			bo.Reset()
		}
		d := bo.Next()
		l.log.Info("connection lost; reconnecting", "err", cause, "uptime", uptime.Round(time.Millisecond), "retry_in", d)
		l.setDown(cause, d)
		l.dropped(cause, uptime, gen, &fl)
		if !sleep(ctx, d) {
			return
		}
	}
}

// retry records a failed dial and waits out the backoff; it reports
// whether ctx is still alive.
func (l *link) retry(ctx context.Context, bo *control.Backoff, err error) bool {
	d := bo.Next()
	l.log.Warn("connect failed; retrying", "err", err, "retry_in", d)
	l.setDown(err, d)
	return sleep(ctx, d)
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
	for _, m := range l.marks {
		m.synced = false // messages may be missed until the next catch_up
	}
	l.setStateLocked(stateDown)
}

// up records a new connection and tells the session if it had been told
// of an outage. It returns the channels to join again.
func (l *link) up(conn *control.Conn, fl *flapper) []string {
	l.mu.Lock()
	l.pin = conn.ServerID()
	l.conn = conn
	l.everUp = true
	l.lastErr = nil
	l.admin = conn.Admin()
	clear(l.permSent) // a new session: the server forgot the old one's requests
	channels := l.rejoinListLocked()
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
	return channels
}

// rejoinListLocked is every joined channel and every --join channel, once
// each, --join ones first in flag order.
func (l *link) rejoinListLocked() []string {
	out := slices.Clone(l.autoJoin)
	var rest []string
	for ch := range l.joined {
		if !slices.Contains(out, ch) {
			rest = append(rest, ch)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// rejoin joins channels on conn. Successes are silent; a refusal drops the
// channel from the joined set and tells the session; a lost connection
// ends it (the next connection re-joins).
func (l *link) rejoin(conn *control.Conn, channels []string) {
	ctx := context.Background()
	for _, ch := range channels {
		r, err := conn.Request(ctx, &protocol.Frame{Type: protocol.TJoin, Channel: ch})
		if err == nil && r.Type != protocol.TJoined {
			err = fmt.Errorf("unexpected reply %s", r.Type)
		}
		var pe *protocol.Error
		switch {
		case err == nil:
			l.mu.Lock()
			l.joined[ch] = true
			l.mu.Unlock()
			l.b.refreshTools()
		case errors.As(err, &pe):
			l.mu.Lock()
			wasJoined := l.joined[ch]
			delete(l.joined, ch)
			l.mu.Unlock()
			l.log.Warn("join refused", "channel", ch, "err", err)
			what := "--join " + code(ch)
			if wasJoined {
				what = "re-joining " + code(ch)
			}
			l.b.tell(notice(l.url, kindError, ch,
				what+" on "+code(l.url)+" failed: "+pe.Error()))
			l.b.refreshTools()
		default:
			l.log.Debug("re-join interrupted", "channel", ch, "err", err)
			return
		}
	}
}

// pump routes the connection's unprompted frames until it ends or ctx
// does.
func (l *link) pump(ctx context.Context, conn *control.Conn) {
	events := conn.Events()
	for {
		select {
		case f, ok := <-events:
			if !ok {
				return
			}
			l.event(f)
		case <-l.permWake:
			l.sends.Go(func() { l.forwardPermissions(conn) })
		case <-ctx.Done():
			return
		}
	}
}

// event handles one unprompted frame: a delivery, a notice, or an error
// nobody waits for.
func (l *link) event(f *protocol.Frame) {
	switch f.Type {
	case protocol.TChannelMsg:
		l.mu.Lock()
		m := l.marks[f.Channel]
		if m == nil {
			l.marks[f.Channel] = &watermark{seq: f.Seq, synced: true}
		} else if m.synced {
			m.seq = max(m.seq, f.Seq)
		}
		l.mu.Unlock()
		level := l.b.policy.channel(l.url, f.Channel)
		if level == identity.Mute {
			return
		}
		body, sealed := deliveryBody(f)
		m2 := &inbound{server: l.url, channel: f.Channel, from: f.From, body: body, sealed: sealed, level: level}
		var key entryKey
		if f.Seq != 0 {
			key = entryKey{server: l.url, scope: "#" + f.Channel, seq: f.Seq}
		}
		l.b.deliver(m2.notification(), entry{key: key, level: level, scope: "#" + f.Channel + " on " + code(l.url)})
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
		l.mu.Lock()
		delete(l.joined, f.Channel)
		l.autoJoin = slices.DeleteFunc(l.autoJoin, func(c string) bool { return c == f.Channel })
		l.mu.Unlock()
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
		l.mu.Lock()
		if l.joined[f.Channel] {
			delete(l.joined, f.Channel)
			l.joined[f.NewName] = true
		}
		for i, c := range l.autoJoin {
			if c == f.Channel {
				l.autoJoin[i] = f.NewName
			}
		}
		if m, ok := l.marks[f.Channel]; ok {
			delete(l.marks, f.Channel)
			l.marks[f.NewName] = m
		}
		l.mu.Unlock()
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
	l.joined = map[string]bool{}
	l.autoJoin = nil
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
