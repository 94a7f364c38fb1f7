package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/conclave/conclave/protocol"
	"github.com/conclave/conclave/server"
)

// WebCmd prints a one-time link that enrolls a browser as a machine.
type WebCmd struct {
	serverFlag
	Name   string `name:"name" default:"browser" placeholder:"MACHINE" help:"The browser's machine name, as 'machine list' will show it."`
	NoOpen bool   `name:"no-open" help:"Only print the link; do not try to open it in a browser here."`
}

// Run asks the server for the link, prints it and, on a desktop with a
// terminal, opens it.
func (c *WebCmd) Run(ctx context.Context, g *Globals) error {
	if err := checkNewName("machine name", c.Name); err != nil {
		return err
	}
	r, srv, err := g.oneShot(ctx, c.Server, &protocol.Frame{Type: protocol.TEnrollLink, Machine: c.Name}, protocol.TEnrollToken)
	if err != nil {
		return err
	}
	link := r.URL
	if link == "" {
		base, err := pageBase(srv.URL)
		if err != nil {
			return err
		}
		link = server.EnrollURL(base, r.Token)
	}
	expires := ""
	if r.ExpiresAt != nil {
		expires = *r.ExpiresAt
	}
	if !secureContext(link) {
		fmt.Fprintln(g.Stderr, "warning: browsers make keys only on https:// pages (or on localhost); serve with --tls-cert or behind a TLS proxy and set --public-url")
	}
	if g.JSON {
		return g.printJSON(struct {
			URL       string `json:"url"`
			Machine   string `json:"machine"`
			ExpiresAt string `json:"expires_at"`
		}{link, c.Name, expires})
	}
	g.printf("Open this link in the browser to enroll it as machine %q (it works once, until %s):\n\n  %s\n\n", c.Name, expires, link)
	if !c.NoOpen && desktop() {
		if err := openBrowser(ctx, link); err == nil {
			g.printf("(opened in your browser)\n")
		}
	}
	return nil
}

// pageBase turns the server URL a client uses into the page's base:
// wss:// becomes https://, ws:// becomes http://, and the path is kept.
func pageBase(serverURL string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("server URL %q: %w", serverURL, err)
	}
	switch u.Scheme {
	case "wss", "https":
		u.Scheme = "https"
	case "ws", "http":
		u.Scheme = "http"
	default:
		return "", fmt.Errorf("server URL %q: want ws:// or wss://", serverURL)
	}
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimRight(u.String(), "/"), nil
}

// secureContext reports whether a browser treats link as a secure
// context, where WebCrypto is available.
func secureContext(link string) bool {
	u, err := url.Parse(link)
	if err != nil {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	host := u.Hostname()
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// desktop reports whether a browser is likely at hand: stdout is a
// terminal on a graphical session.
func desktop() bool {
	fi, err := os.Stdout.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	switch runtime.GOOS {
	case "darwin", "windows":
		return true
	}
	return os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != ""
}

// openBrowser hands link to the desktop's opener and lets it run on.
func openBrowser(ctx context.Context, link string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.CommandContext(ctx, "open", link)
	case "windows":
		cmd = exec.CommandContext(ctx, "rundll32", "url.dll,FileProtocolHandler", link)
	default:
		cmd = exec.CommandContext(ctx, "xdg-open", link)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release() // the opener outlives this short process

}
