package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conclave/conclave/datadir"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/protocol"
	"github.com/conclave/conclave/web"
)

// Admin is one entry of the server-admin allowlist. A nil Key leaves the
// name claimable by whoever registers it first; a Key pins the name.
type Admin struct {
	User string
	Key  ed25519.PublicKey
}

// DefaultQueueBytes is the default of Config.QueueBytes: room for a full
// history page (4 MiB) beside a burst of deliveries, while ten readers
// that fall behind a flood of bodies escaped to six times their size keep
// the server under 300 MiB (docs/PERFORMANCE.md).
const DefaultQueueBytes = 8 << 20

// Config configures a Server. The zero value of every field but DataDir
// (or Ephemeral) is a usable default.
type Config struct {
	// DataDir holds the event log, snapshots, history and server id.
	DataDir string
	// Ephemeral keeps everything in memory; DataDir must be empty.
	Ephemeral bool
	// Admins is the server-admin allowlist (--admin, CONCLAVE_ADMINS).
	Admins []Admin
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// SnapshotEvery writes a snapshot after this many events (default 10 000).
	SnapshotEvery int
	// MaxBody caps body and sealed.ciphertext in bytes (default 64 KiB,
	// at most protocol.MaxBodyCeiling).
	MaxBody int
	// RateLimit is posts and whispers per second per session (default 20,
	// burst RateBurst, default 40); negative disables it.
	RateLimit float64
	RateBurst int
	// HandshakeTimeout bounds the handshake (default 10 s).
	HandshakeTimeout time.Duration
	// IdleTimeout drops sessions silent for this long (default 60 s),
	// checked every ReapInterval (default 15 s).
	IdleTimeout  time.Duration
	ReapInterval time.Duration
	// MaxConnsPerIP caps concurrent connections from one address (default
	// 10 000), HandshakesPerIP the handshakes per second from one address
	// (default 1 000), AdminRate the admin events per second per user
	// (default 50, burst AdminBurst, default 200). Negative disables each.
	MaxConnsPerIP   int
	HandshakesPerIP float64
	AdminRate       float64
	AdminBurst      int
	// RegistrationClosed refuses register from anyone but a pinned admin;
	// server admins add users with user_add.
	RegistrationClosed bool
	// HistoryRetention is how long channel messages are kept (default 7 days).
	HistoryRetention time.Duration
	// QueueLen is each session's outbound queue in frames (default 1024).
	QueueLen int
	// PermissionTTL is how long a relayed permission request waits for a
	// verdict before it expires (default 5 min; expiry is announced at the
	// next ReapInterval tick, and an expired request is refused at once).
	PermissionTTL time.Duration
	// QueueBytes is each session's outbound budget in bytes: frames queued
	// for it and not yet written (default DefaultQueueBytes). A session
	// over either bound is dropped as a slow consumer.
	QueueBytes int
	// WriteTimeout bounds one WebSocket write (default 10 s).
	WriteTimeout time.Duration
	// NoSync skips fsync (tests and benchmarks only).
	NoSync bool
	// Version is reported in logs and in conclave_build_info; Revision too.
	Version  string
	Revision string
	// MetricsSeparate keeps /metrics off Handler: it is served only by
	// MetricsHandler, on a listener of its own (serve --metrics-bind).
	MetricsSeparate bool
	// PublicURL is the address users open in a browser (--public-url,
	// CONCLAVE_PUBLIC_URL), e.g. https://chat.example.org behind a TLS
	// proxy: enrollment links are built on it and a browser's WebSocket
	// must come from its origin. Empty: links are built by the client from
	// the server URL it uses, and a browser must be same-origin.
	PublicURL string
	// EnrollTTL is how long an enrollment link stays valid (default
	// EnrollTTL, 10 minutes).
	EnrollTTL time.Duration

	// failHook is passed to the event log to inject write failures (tests).
	failHook func(op string) error
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.SnapshotEvery <= 0 {
		c.SnapshotEvery = 10000
	}
	if c.MaxBody <= 0 {
		c.MaxBody = protocol.DefaultMaxBody
	}
	if c.RateLimit == 0 {
		c.RateLimit = 20
	}
	if c.RateBurst <= 0 {
		c.RateBurst = 40
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.ReapInterval <= 0 {
		c.ReapInterval = 15 * time.Second
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = 10000
	}
	if c.HandshakesPerIP == 0 {
		c.HandshakesPerIP = 1000
	}
	if c.AdminRate == 0 {
		c.AdminRate = 50
	}
	if c.AdminBurst <= 0 {
		c.AdminBurst = 200
	}
	if c.HistoryRetention <= 0 {
		c.HistoryRetention = 7 * 24 * time.Hour
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 1024
	}
	if c.PermissionTTL <= 0 {
		c.PermissionTTL = DefaultPermissionTTL
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.EnrollTTL <= 0 {
		c.EnrollTTL = EnrollTTL
	}
	return c
}

// DefaultPermissionTTL is Config.PermissionTTL's default.
const DefaultPermissionTTL = 5 * time.Minute

// Server is a conclave server. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	admins map[string]ed25519.PublicKey // user -> pin (nil = unpinned)

	ready    atomic.Bool
	closing  atomic.Bool
	serverID string

	// mu guards state. commitCommands holds it to decide and apply; readers
	// (queries, joins that need no write) hold it shared.
	mu    sync.RWMutex
	state *projections.State

	store   *store // nil when ephemeral
	hub     *hub
	relay   *permRelay
	history *history

	auditIx auditIndex
	admit   *admission

	// The web client: enrollment links and the public address.
	enrolls      enrollments
	publicBase   string // Config.PublicURL without a trailing slash, or ""
	publicOrigin string // its scheme://host, or ""

	ops     chan *op
	stop    chan struct{}   // closed by Shutdown
	stopCtx context.Context // cancelled by Shutdown
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stopped sync.Once
	metrics metrics
}

// ConfigError reports a Config field that New refuses. Field is the
// field's name (MaxBody, PublicURL, Admins) and Err what is wrong with its
// value, phrased to follow the name, so that a caller can name the field
// in its own terms (the CLI names its flag).
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return "server: Config." + e.Field + " " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// New builds a server from cfg. It does no I/O: call Recover to open the
// data dir and start accepting sessions. It returns a [*ConfigError] for a
// field it refuses.
func New(cfg Config) (*Server, error) {
	if cfg.Ephemeral && cfg.DataDir != "" {
		return nil, errors.New("server: Config.Ephemeral and Config.DataDir are mutually exclusive")
	}
	if !cfg.Ephemeral && cfg.DataDir == "" {
		return nil, errors.New("server: Config.DataDir is required unless Config.Ephemeral is set")
	}
	if cfg.MaxBody > protocol.MaxBodyCeiling {
		return nil, &ConfigError{Field: "MaxBody", Err: fmt.Errorf("%d is over the ceiling of %d bytes (a body escaped in JSON must fit in one %d-byte message)",
			cfg.MaxBody, protocol.MaxBodyCeiling, protocol.MaxMessage)}
	}
	cfg = cfg.withDefaults()
	base, origin, err := parsePublicURL(cfg.PublicURL)
	if err != nil {
		return nil, &ConfigError{Field: "PublicURL", Err: err}
	}
	s := &Server{
		publicBase: base, publicOrigin: origin,
		cfg:    cfg,
		log:    cfg.Logger,
		admins: make(map[string]ed25519.PublicKey),
		state:  projections.New(),
		ops:    make(chan *op, 1024),
		stop:   make(chan struct{}),
	}
	for _, a := range cfg.Admins {
		if err := protocol.CheckName(a.User); err != nil {
			return nil, &ConfigError{Field: "Admins", Err: fmt.Errorf("%q: %w", a.User, err)}
		}
		s.admins[a.User] = a.Key
	}
	s.admit = newAdmission(cfg)
	s.stopCtx, s.cancel = context.WithCancel(context.Background())
	s.hub = newHub(s)
	s.relay = newPermRelay(s)
	return s, nil
}

// Open is New followed by Recover with no deadline.
func Open(cfg Config) (*Server, error) {
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Recover(context.Background()); err != nil {
		return nil, err
	}
	return s, nil
}

// Recover opens the data dir, rebuilds the state and starts
// commitCommands and the reaper. /health answers 200 once it has returned
// nil. A ctx done before the state is rebuilt (a long replay) stops it
// with ctx's error and releases the data dir.
func (s *Server) Recover(ctx context.Context) error {
	if s.cfg.Ephemeral {
		id, err := datadir.NewServerID()
		if err != nil {
			return err
		}
		s.serverID = id
		s.log.Info("ephemeral server: nothing will be written to disk")
	} else {
		st, state, err := openStore(ctx, s.cfg.DataDir, &eventlog.Options{NoSync: s.cfg.NoSync, Logger: s.log, FailHook: s.cfg.failHook}, s.log)
		if err != nil {
			return err
		}
		s.store, s.state, s.serverID = st, state, st.data.ServerID()
	}
	for name, key := range s.admins {
		if key == nil {
			s.log.Warn("admin name is not pinned to a key: whoever registers it first becomes admin; use --admin user=KEY", "user", name)
		}
	}
	h, err := openHistory(s)
	if err != nil {
		if s.store != nil {
			s.store.close()
		}
		return err
	}
	s.history = h
	s.wg.Add(4)
	go s.commitCommands()
	go s.reaper()
	go h.persistPosts()
	go h.purger()
	s.ready.Store(true)
	return nil
}

// ServerID returns the id this server presents in x-conclave-server-id.
func (s *Server) ServerID() string { return s.serverID }

// Handler serves /, /health, the web client under /web/ and, unless
// Config.MetricsSeparate, /metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", s.handleHealth)
	if !s.cfg.MetricsSeparate {
		mux.HandleFunc("/metrics", s.handleMetrics)
	}
	mux.Handle("/web/", web.Handler())
	mux.HandleFunc("/", s.handleRoot)
	return mux
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !s.ready.Load() || s.closing.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "starting\n")
		return
	}
	io.WriteString(w, "ok")
}

func (s *Server) handleRoot(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if !s.ready.Load() || s.closing.Load() {
		http.Error(w, "server is not accepting sessions yet", http.StatusServiceUnavailable)
		return
	}
	if !isUpgrade(r) {
		if wantsHTML(r) {
			// Relative, so that it holds behind a proxy's path prefix.
			w.Header().Set("Location", "web/")
			w.WriteHeader(http.StatusFound)
			return
		}
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "this endpoint speaks WebSocket (conclave protocol v1)", http.StatusUpgradeRequired)
		return
	}
	if !s.originAllowed(r) {
		s.refuseOrigin(w, r)
		return
	}
	ip := remoteIP(r)
	if why := s.admit.enter(ip, time.Now()); why != "" {
		s.metrics.rejected(protocol.CodeRateLimited)
		http.Error(w, string(protocol.CodeRateLimited)+": "+why, http.StatusTooManyRequests)
		return
	}
	s.serveWS(w, r, func() { s.admit.leave(ip) })
}

// isAdmin reports whether user is on the server-admin allowlist.
func (s *Server) isAdmin(user string) bool {
	_, ok := s.admins[user]
	return ok
}

// Shutdown stops accepting sessions, closes every session with a
// going-away reason, stops commitCommands, writes a snapshot and releases
// the data dir. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.stopped.Do(func() {
		s.hub.mu.Lock() // see serveWS: no session joins live after this
		s.closing.Store(true)
		s.hub.mu.Unlock()
		s.hub.closeAll(protocol.ReasonShutdown)
		close(s.stop)
		s.cancel()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("shutdown: %w", ctx.Err())
		}
		s.hub.wait(ctx)
		if s.store != nil {
			s.mu.RLock()
			snapErr := s.store.snapshot(s.state)
			s.mu.RUnlock()
			if snapErr != nil {
				s.log.Error("snapshot at shutdown failed", "err", snapErr)
			}
			if herr := s.history.close(); herr != nil && err == nil {
				err = herr
			}
			if cerr := s.store.close(); cerr != nil && err == nil {
				err = cerr
			}
		}
	})
	return err
}
