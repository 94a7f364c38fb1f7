package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHealth probes a real server on a data dir the way the container's
// HEALTHCHECK does, then the same port after the server stopped.
func TestHealth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	addr := freeAddr(t)
	srv := serveDir(t, addr, t.TempDir())

	if out := ok(t, nil, "health", "--url", "http://"+addr+"/health"); out != "ok\n" {
		t.Errorf("health --url: stdout %q, want ok", out)
	}
	// The image sets CONCLAVE_BIND=0.0.0.0:4390 and runs plain `health`.
	port := addr[strings.LastIndex(addr, ":")+1:]
	if out := ok(t, []string{"CONCLAVE_BIND=0.0.0.0:" + port}, "health"); out != "ok\n" {
		t.Errorf("health from CONCLAVE_BIND: stdout %q, want ok", out)
	}
	out := ok(t, []string{"CONCLAVE_HEALTH_URL=ws://" + addr}, "--json", "health")
	var doc struct {
		OK  bool   `json:"ok"`
		URL string `json:"url"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || !doc.OK || doc.URL != "http://"+addr+"/health" {
		t.Errorf("--json health from CONCLAVE_HEALTH_URL=ws://…: %q (%v)", out, err)
	}
	// Another endpoint is not the health endpoint.
	fails(t, 1, "answered 200 with \"# HELP", nil, "health", "--url", "http://"+addr+"/metrics")

	if code := srv.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("serve exit code after SIGTERM = %d", code)
	}
	fails(t, 1, "cannot reach http://"+addr+"/health", nil, "health", "--url", "http://"+addr+"/health")
}

// TestHealthBadAnswers checks every way a probe fails against a fake
// endpoint: not ready (503), a 200 that is not "ok", a redirect, silence.
func TestHealthBadAnswers(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/starting", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "starting\n")
	})
	mux.HandleFunc("/wrong", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "fine, thanks") })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/good", http.StatusFound) })
	mux.HandleFunc("/good", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	stall := make(chan struct{})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	defer close(stall)

	ok(t, nil, "health", "--url", ts.URL+"/good")
	fails(t, 1, `answered 503 Service Unavailable: "starting"`, nil, "health", "--url", ts.URL+"/starting")
	fails(t, 1, `answered 200 with "fine, thanks", want ok`, nil, "health", "--url", ts.URL+"/wrong")
	fails(t, 1, "answered 302", nil, "health", "--url", ts.URL+"/moved")
	start := time.Now()
	fails(t, 1, "no answer within 300ms", nil, "health", "--url", ts.URL+"/slow", "--timeout", "300ms")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("health --timeout 300ms took %s", d)
	}
	fails(t, 1, "want an http://", nil, "health", "--url", "ftp://127.0.0.1/health")
	fails(t, 1, "CONCLAVE_BIND", []string{"CONCLAVE_BIND=nonsense"}, "health")
}

func TestHealthURL(t *testing.T) {
	for _, c := range []struct{ raw, bind, want string }{
		{"", "", "http://127.0.0.1:4390/health"},
		{"", "0.0.0.0:4390", "http://127.0.0.1:4390/health"},
		{"", ":8080", "http://127.0.0.1:8080/health"},
		{"", "[::]:4390", "http://[::1]:4390/health"},
		{"", "10.1.2.3:4390", "http://10.1.2.3:4390/health"},
		{"http://h:1/health", "0.0.0.0:9", "http://h:1/health"},
		{"wss://chat.example.com", "", "https://chat.example.com/health"},
		{"ws://h:4390/", "", "http://h:4390/health"},
		{"https://h/custom", "", "https://h/custom"},
	} {
		got, err := healthURL(c.raw, c.bind)
		if err != nil || got != c.want {
			t.Errorf("healthURL(%q, %q) = %q, %v; want %q", c.raw, c.bind, got, err, c.want)
		}
	}
	for _, raw := range []string{"ftp://h/", "http://", "::"} {
		if got, err := healthURL(raw, ""); err == nil {
			t.Errorf("healthURL(%q) = %q, want an error", raw, got)
		}
	}
}
