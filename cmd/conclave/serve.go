package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/server"
)

// ServeCmd runs the central server.
type ServeCmd struct {
	Bind          string   `help:"Address to listen on." default:"0.0.0.0:4390" env:"CONCLAVE_BIND"`
	DataDir       string   `help:"Data directory (event log, snapshots, history, server id). Required unless --ephemeral." env:"CONCLAVE_DATA_DIR" type:"path" xor:"store"`
	Ephemeral     bool     `help:"Keep everything in memory; nothing is written to disk." xor:"store"`
	Admin         []string `help:"Server admin, as USER or USER=KEY (KEY pins the name to an ssh-ed25519 key). Repeatable." env:"CONCLAVE_ADMINS" sep:","`
	TLSCert       string   `help:"Serve wss:// with this certificate (PEM)." name:"tls-cert" type:"existingfile"`
	TLSKey        string   `help:"Private key for --tls-cert (PEM)." name:"tls-key" type:"existingfile"`
	MetricsBind   string   `help:"Serve /metrics on this address too (default: the main listener only)."`
	SnapshotEvery int      `help:"Write a snapshot every N events." default:"10000"`
	MaxBody       int      `help:"Largest message body in bytes." default:"65536"`
	RateLimit     float64  `help:"Posts and whispers per second per session (burst twice that); 0 disables." default:"20"`
}

// Run starts the server and blocks until SIGINT or SIGTERM.
func (c *ServeCmd) Run(g *Globals) error {
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
		Version: version,
	}
	if c.RateLimit <= 0 {
		cfg.RateLimit = -1
	}
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Bind)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Bind, err)
	}
	scheme := "ws"
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
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
		ms = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { serveErr <- ms.Serve(mln) }()
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	start := time.Now()
	if err := srv.Recover(); err != nil {
		hs.Close()
		return err
	}
	logger.Info("conclave server listening", "addr", ln.Addr().String(), "url", scheme+"://"+ln.Addr().String(),
		"server_id", srv.ServerID(), "version", version, "startup", time.Since(start).Round(time.Millisecond).String())

	select {
	case sig := <-sigs:
		logger.Info("shutting down: closing sessions and writing a snapshot", "signal", sig.String())
	case err := <-serveErr:
		srv.Shutdown(context.Background())
		return fmt.Errorf("serve: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hs.Shutdown(ctx)
	if ms != nil {
		ms.Shutdown(ctx)
	}
	if err := srv.Shutdown(ctx); err != nil {
		return err
	}
	logger.Info("server stopped")
	return nil
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
