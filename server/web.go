package server

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/conclave/conclave/protocol"
)

// parsePublicURL checks Config.PublicURL and returns its base (no trailing
// slash) and origin (scheme://host, lower case).
func parsePublicURL(raw string) (base, origin string, err error) {
	if raw == "" {
		return "", "", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("is not a URL: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%q is not https://HOST[:PORT][/PATH], the address users open", raw)
	}
	origin = strings.ToLower(u.Scheme + "://" + u.Host)
	return strings.TrimRight(origin+u.EscapedPath(), "/"), origin, nil
}

// originAllowed applies the Origin check to a WebSocket upgrade. Browsers
// always send Origin; the CLI, the bridge and other programs send none and
// are not affected. With a public URL the page's origin must be exactly
// that URL's; without one it must name the host the request was sent to
// (same origin), which is what a browser on the server's own address does.
func (s *Server) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false // "null" (sandboxed frames, files) and garbage
	}
	if s.publicOrigin != "" {
		return strings.EqualFold(u.Scheme+"://"+u.Host, s.publicOrigin)
	}
	return strings.EqualFold(u.Host, r.Host)
}

// refuseOrigin answers an upgrade whose Origin is not allowed.
func (s *Server) refuseOrigin(w http.ResponseWriter, r *http.Request) {
	s.metrics.rejected(protocol.CodeUnauthorized)
	s.log.Info("websocket upgrade refused: origin not allowed", "origin", r.Header.Get("Origin"), "host", r.Host)
	http.Error(w, "unauthorized: this page's origin may not connect to this server (see --public-url)", http.StatusForbidden)
}

// wantsHTML reports whether a plain GET / comes from a browser, which is
// sent to the web client instead of the 426 other clients get.
func wantsHTML(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html")
}
