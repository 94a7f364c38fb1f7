package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// HealthCmd probes a server's /health endpoint. It is the container
// image's HEALTHCHECK (a scratch image has no curl) and works as a probe
// for any supervisor.
type HealthCmd struct {
	URL     string        `name:"url" env:"CONCLAVE_HEALTH_URL" placeholder:"URL" help:"Health endpoint to probe (http, https, ws or wss; an empty path means /health). Default: /health on $CONCLAVE_BIND's port on loopback, else http://127.0.0.1:4390/health."`
	Timeout time.Duration `default:"5s" help:"Give up after this long."`
}

// healthBodyLimit bounds how much of the answer is read.
const healthBodyLimit = 512

// Run fetches the URL and succeeds only on 200 with the body "ok". It
// prints "ok" (with --json, {"ok":true,"url":…}); anything else fails with
// one "error: …" line naming the URL and what it answered.
func (c *HealthCmd) Run(ctx context.Context, g *Globals) error {
	target, err := healthURL(c.URL, os.Getenv("CONCLAVE_BIND"))
	if err != nil {
		return err
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %s", c.Timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("health URL %q: %w", target, err)
	}
	req.Header.Set("User-Agent", "conclave-health/"+g.Version)
	client := &http.Client{
		// The probe talks to the server itself: no proxy, no redirects.
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, ForceAttemptHTTP2: false,
			DialContext: (&net.Dialer{Timeout: c.Timeout}).DialContext, TLSHandshakeTimeout: c.Timeout},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("cannot reach %s: no answer within %s", target, c.Timeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("cannot reach %s: %w", target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, healthBodyLimit))
	if err != nil {
		return fmt.Errorf("read the answer of %s: %w", target, err)
	}
	body := strings.TrimSpace(string(b))
	if resp.StatusCode != http.StatusOK {
		msg := fmt.Sprintf("%s answered %s", target, resp.Status)
		if body != "" {
			msg += ": " + quoteShort(body)
		}
		return errors.New(msg)
	}
	if body != "ok" {
		return fmt.Errorf("%s answered 200 with %s, want ok", target, quoteShort(body))
	}
	if g.JSON {
		return g.printJSON(struct {
			OK  bool   `json:"ok"`
			URL string `json:"url"`
		}{true, target})
	}
	g.printf("ok\n")
	return nil
}

// healthURL returns the URL to probe: raw when given (ws/wss mapped to
// http/https, an empty path to /health), else /health on bind's port on
// loopback (an unspecified or empty host means 127.0.0.1), else the
// default port on 127.0.0.1.
func healthURL(raw, bind string) (string, error) {
	if raw == "" {
		host, port := "127.0.0.1", "4390"
		if bind = strings.TrimSpace(bind); bind != "" {
			h, p, err := net.SplitHostPort(bind)
			if err != nil {
				return "", fmt.Errorf("cannot derive the health URL from CONCLAVE_BIND=%s: %v; use --url", bind, err)
			}
			port = p
			switch ip := net.ParseIP(h); {
			case h == "" || (ip != nil && ip.IsUnspecified() && ip.To4() != nil):
				host = "127.0.0.1"
			case ip != nil && ip.IsUnspecified():
				host = "::1"
			default:
				host = h
			}
		}
		return "http://" + net.JoinHostPort(host, port) + "/health", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("invalid --url %q: %v", raw, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("invalid --url %q: want an http://, https://, ws:// or wss:// URL", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("invalid --url %q: no host", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/health"
	}
	return u.String(), nil
}

// quoteShort quotes s for an error line, cut to 80 bytes.
func quoteShort(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return fmt.Sprintf("%q", s)
}
