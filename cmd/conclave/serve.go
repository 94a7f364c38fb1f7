package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/conclave/conclave/regfile"
	"github.com/conclave/conclave/timespec"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/server"
)

// ServeCmd runs the central server.
type ServeCmd struct {
	Bind          string   `help:"Address to listen on (loopback by default; 0.0.0.0:4390 for every interface)." default:"127.0.0.1:4390" env:"CONCLAVE_BIND"`
	DataDir       string   `help:"Data directory (event log, snapshots, history, server id). Required unless --ephemeral." env:"CONCLAVE_DATA_DIR" type:"path" xor:"store"`
	Ephemeral     bool     `help:"Keep everything in memory; nothing is written to disk." env:"CONCLAVE_EPHEMERAL" xor:"store"`
	Admin         []string `help:"Server admin, as USER or USER=KEY (KEY pins the name to an ssh-ed25519 key). Repeatable." env:"CONCLAVE_ADMINS" sep:","`
	TLSCert       string   `help:"Serve wss:// with this certificate (PEM)." name:"tls-cert" env:"CONCLAVE_TLS_CERT" type:"existingfile"`
	TLSKey        string   `help:"Private key for --tls-cert (PEM)." name:"tls-key" env:"CONCLAVE_TLS_KEY" type:"existingfile"`
	MetricsBind   string   `help:"Serve /metrics on this address only, instead of on the main listener." env:"CONCLAVE_METRICS_BIND"`
	SnapshotEvery int      `help:"Write a snapshot every N events." default:"10000" env:"CONCLAVE_SNAPSHOT_EVERY"`
	MaxBody       int      `help:"Largest message body in bytes (at most 1048576)." default:"65536" env:"CONCLAVE_MAX_BODY"`
	QueueBytes    int      `help:"Bytes queued for one session and not yet written before it is dropped as a slow consumer." default:"8388608" env:"CONCLAVE_QUEUE_BYTES"`
	RateLimit     float64  `help:"Posts and whispers per second per session (burst twice that); 0 disables." default:"20" env:"CONCLAVE_RATE_LIMIT"`
	MaxConnsPerIP int      `name:"max-conns-per-ip" help:"Concurrent connections from one address; 0 disables." default:"10000" env:"CONCLAVE_MAX_CONNS_PER_IP"`
	HandshakesIP  float64  `name:"handshakes-per-ip" help:"Handshakes per second from one address; 0 disables." default:"1000" env:"CONCLAVE_HANDSHAKES_PER_IP"`
	AdminRate     float64  `help:"Admin changes (channels, ACLs, invites, bans…) per second per user, burst 4x; 0 disables." default:"50" env:"CONCLAVE_ADMIN_RATE"`
	Registration  string   `help:"open: anyone may register; closed: only pinned admins, and users a server admin adds." enum:"open,closed" default:"open" env:"CONCLAVE_REGISTRATION"`
	HistoryKeep   string   `name:"history-retention" help:"How long channel messages are kept (e.g. 7d, 36h)." default:"7d" env:"CONCLAVE_HISTORY_RETENTION"`
	PublicURL     string   `name:"public-url" env:"CONCLAVE_PUBLIC_URL" placeholder:"URL" help:"The https:// address users open in a browser (behind a TLS proxy, say): enrollment links use it, and browsers must connect from its origin."`
}

// Run starts the server and blocks until SIGINT or SIGTERM.
func (c *ServeCmd) Run(ctx context.Context, g *Globals) error {
	if !c.Ephemeral && c.DataDir == "" {
		return errors.New("serve needs --data-dir DIR (or --ephemeral for a throwaway in-memory server)")
	}
	logger := g.Logger
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	admins, err := parseAdmins(c.Admin)
	if err != nil {
		return err
	}
	cfg := server.Config{
		DataDir: c.DataDir, Ephemeral: c.Ephemeral, Admins: admins, Logger: logger,
		SnapshotEvery: c.SnapshotEvery, MaxBody: c.MaxBody, RateLimit: c.RateLimit, RateBurst: int(2 * c.RateLimit),
		QueueBytes: c.QueueBytes,
		Version:    version, Revision: buildRevision(), MetricsSeparate: c.MetricsBind != "", PublicURL: c.PublicURL,
	}
	if c.RateLimit <= 0 {
		cfg.RateLimit = -1
	}
	cfg.MaxConnsPerIP = orDisabled(c.MaxConnsPerIP)
	cfg.HandshakesPerIP = c.HandshakesIP
	if c.HandshakesIP <= 0 {
		cfg.HandshakesPerIP = -1
	}
	cfg.AdminRate, cfg.AdminBurst = c.AdminRate, int(4*c.AdminRate)
	if c.AdminRate <= 0 {
		cfg.AdminRate = -1
	}
	cfg.RegistrationClosed = c.Registration == "closed"
	keep, err := parseRetention(c.HistoryKeep)
	if err != nil {
		return err
	}
	cfg.HistoryRetention = keep
	srv, err := server.New(cfg)
	if err != nil {
		return damageHint(flagError(err), c.DataDir)
	}
	ln, err := net.Listen("tcp", c.Bind)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Bind, err)
	}
	scheme := "ws"
	if c.TLSCert != "" {
		cert, err := loadKeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "wss"
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	serveErr := make(chan error, 2)
	go func() { serveErr <- hs.Serve(ln) }()
	var ms *http.Server
	if c.MetricsBind != "" {
		mln, err := net.Listen("tcp", c.MetricsBind)
		if err != nil {
			hs.Close()
			return fmt.Errorf("listen on %s for metrics: %w", c.MetricsBind, err)
		}
		ms = &http.Server{Handler: srv.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { serveErr <- ms.Serve(mln) }()
		logger.Info("metrics listening", "addr", mln.Addr().String(), "url", "http://"+mln.Addr().String()+"/metrics")
	}

	start := time.Now()
	if err := srv.Recover(ctx); err != nil {
		hs.Close()
		if ms != nil {
			ms.Close()
		}
		return damageHint(err, c.DataDir)
	}
	logger.Info("conclave server listening", "addr", ln.Addr().String(), "url", scheme+"://"+ln.Addr().String(),
		"server_id", srv.ServerID(), "version", version, "startup", time.Since(start).Round(time.Millisecond).String())

	// main's context ends at SIGINT or SIGTERM.
	select {
	case <-ctx.Done():
		logger.Info("shutting down: closing sessions and writing a snapshot")
	case err := <-serveErr:
		srv.Shutdown(context.Background())
		return fmt.Errorf("serve: %w", err)
	}
	// Shutdown gets a context of its own: main's is already done.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	if ms != nil {
		ms.Shutdown(sctx)
	}
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	logger.Info("server stopped")
	return nil
}

// orDisabled maps a flag's 0 ("disabled") to the server's negative value.
func orDisabled(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// parseRetention reads --history-retention, a duration (timespec) of at
// least a minute.
func parseRetention(s string) (time.Duration, error) {
	d, err := timespec.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid --history-retention: %w", err)
	}
	if d < time.Minute {
		return 0, fmt.Errorf("invalid --history-retention %q: keep history at least a minute", s)
	}
	return d, nil
}

// serveFlags names the flag behind each server.Config field that
// server.New may refuse.
var serveFlags = map[string]string{"MaxBody": "--max-body", "PublicURL": "--public-url", "Admins": "--admin"}

// flagError says a server.ConfigError in terms of serve's flags.
func flagError(err error) error {
	var ce *server.ConfigError
	if errors.As(err, &ce) {
		if flag, ok := serveFlags[ce.Field]; ok {
			return fmt.Errorf("%s %w", flag, ce.Err)
		}
	}
	return err
}

// parseAdmins reads USER or USER=KEY entries.
func parseAdmins(entries []string) ([]server.Admin, error) {
	var out []server.Admin
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		user, key, pinned := strings.Cut(e, "=")
		a := server.Admin{User: strings.TrimSpace(user)}
		if pinned {
			pub, err := identity.ParsePublicKey(key)
			if err != nil {
				return nil, fmt.Errorf("--admin %s: %w", a.User, err)
			}
			a.Key = pub
		}
		out = append(out, a)
	}
	return out, nil
}

// damageHint adds the operator's way out to an error that reports damage
// on disk (it names the segment file and seq already).
func damageHint(err error, dir string) error {
	var se *eventlog.SegmentError
	if dir == "" || !errors.As(err, &se) {
		return err
	}
	return fmt.Errorf("%w; the data dir is damaged: conclave audit verify --data-dir %s names every damaged record, "+
		"and conclave repair --data-dir %s shows the way out (a dry run without --yes), or restore a backup", err, dir, dir)
}

// Caps of the TLS files: a certificate chain is a few KiB, a key less.
const (
	maxCertFile = 1 << 20
	maxKeyFile  = 64 << 10
)

// loadKeyPair is tls.LoadX509KeyPair over files that must be regular and
// under a cap (regfile), so that a path that never ends is refused.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := regfile.Read(certFile, maxCertFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := regfile.Read(keyFile, maxKeyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(cert, key)
}
