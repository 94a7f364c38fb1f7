package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/conclave/conclave/server"
)

// target is a server under load: a child process, a server in this
// process, or a remote server. Its stats are the server's own CPU time
// and resident memory where they can be had.
type target struct {
	url        string // ws://…
	metricsURL string // http://…/metrics, "" if none
	pid        int    // child process, 0 otherwise
	inProcess  bool
	bare       bool // the baseline server
	close      func() error
}

// cpu returns the server's CPU time so far (user + system).
func (t *target) cpu() (time.Duration, bool) {
	switch {
	case t.pid != 0:
		return procCPU(strconv.Itoa(t.pid))
	case t.inProcess:
		return procCPU("self")
	case t.metricsURL != "":
		v, ok := scrapeValue(t.metricsURL, "process_cpu_seconds_total")
		return time.Duration(v * float64(time.Second)), ok
	}
	return 0, false
}

// rss returns the server's resident memory in bytes.
func (t *target) rss() (int64, bool) {
	switch {
	case t.pid != 0:
		return procRSS(strconv.Itoa(t.pid))
	case t.inProcess:
		return procRSS("self")
	case t.metricsURL != "":
		v, ok := scrapeValue(t.metricsURL, "process_resident_memory_bytes")
		return int64(v), ok
	}
	return 0, false
}

// peakRSS returns the server's peak resident memory in bytes (VmHWM),
// for a child process or this one.
func (t *target) peakRSS() (int64, bool) {
	switch {
	case t.pid != 0:
		return procPeakRSS(strconv.Itoa(t.pid))
	case t.inProcess:
		return procPeakRSS("self")
	}
	return 0, false
}

// writeCounts returns the frames and WebSocket messages the server has
// written so far, from its /metrics.
func (t *target) writeCounts() (frames, writes float64, ok bool) {
	if t.metricsURL == "" {
		return 0, 0, false
	}
	prefix := "conclave_"
	if t.bare {
		prefix = "bare_"
	}
	frames, ok1 := scrapeValue(t.metricsURL, prefix+"frames_out_total")
	writes, ok2 := scrapeValue(t.metricsURL, prefix+"writes_total")
	return frames, writes, ok1 && ok2
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux platform Go supports.
const clockTick = 100

// procCPU reads utime + stime of process pid ("self" for this one).
func procCPU(pid string) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name may hold spaces; fields count from after ")".
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * time.Second / clockTick, true
}

// procRSS reads the resident set size of process pid.
func procRSS(pid string) (int64, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/statm")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}

// procPeakRSS reads VmHWM, the peak resident set size, of process pid.
func procPeakRSS(pid string) (int64, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, false
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// scrapeValue fetches a Prometheus text page and returns the value of the
// unlabelled series name.
func scrapeValue(u, name string) (float64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// metricsURLFor maps ws(s)://host/… to http(s)://host/metrics.
func metricsURLFor(wsURL string) string {
	u, err := url.Parse(wsURL)
	if err != nil {
		return ""
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	u.Path, u.RawQuery = "/metrics", ""
	return u.String()
}

// freePort picks a free loopback port. Another process could take it
// before the child listens; startChild then fails and says why.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// tailBuffer keeps the last bytes written to it (a child's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 16 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*tailMax {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailMax:]...)
	}
	t.mu.Unlock()
	return len(p), nil
}

func (t *tailBuffer) lastLines(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// startChild runs exe with args (which must make it listen on addr) and
// waits until http://addr/health answers 200.
func startChild(exe, addr string, args []string) (*target, error) {
	cmd := exec.Command(exe, args...)
	var env []string
	for _, kv := range os.Environ() {
		// The child takes its settings from the flags alone.
		if !strings.HasPrefix(kv, "CONCLAVE_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	stderr := &tailBuffer{}
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(exe), err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	var closeErr error
	stop := func() error {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exited:
				var ee *exec.ExitError
				if err != nil && !errors.As(err, &ee) {
					closeErr = err
				}
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-exited
				closeErr = errors.New("the server did not stop within 15 s of SIGTERM; killed")
			}
		})
		return closeErr
	}
	health := "http://" + addr + "/health"
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("%s %s exited: %v: %s", filepath.Base(exe), args[0], err, stderr.lastLines(3))
		default:
		}
		if healthy(health) {
			return &target{url: "ws://" + addr, metricsURL: "http://" + addr + "/metrics", pid: cmd.Process.Pid, close: stop}, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("%s %s did not become healthy within 30 s: %s", filepath.Base(exe), args[0], stderr.lastLines(3))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func healthy(u string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// startConclave starts conclave serve on a fresh data dir: a child
// process, or in this process with inProcess.
func startConclave(exe string, inProcess bool, log *slog.Logger) (*target, error) {
	dir, err := os.MkdirTemp("", "conclave-bench-")
	if err != nil {
		return nil, err
	}
	if inProcess {
		srv, err := server.Open(server.Config{DataDir: dir, Logger: log,
			RateLimit: -1, MaxConnsPerIP: -1, HandshakesPerIP: -1, AdminRate: -1})
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			srv.Shutdown(context.Background())
			os.RemoveAll(dir)
			return nil, err
		}
		hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(ln)
		addr := ln.Addr().String()
		return &target{url: "ws://" + addr, metricsURL: "http://" + addr + "/metrics", inProcess: true, close: func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			hs.Shutdown(ctx)
			err := srv.Shutdown(ctx)
			os.RemoveAll(dir)
			return err
		}}, nil
	}
	var lastErr error
	for range 3 { // another process may take the free port first
		addr, err := freePort()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		// Every limit off: all the clients share one address.
		t, err := startChild(exe, addr, []string{"serve", "--bind", addr, "--data-dir", dir,
			"--rate-limit", "0", "--max-conns-per-ip", "0", "--handshakes-per-ip", "0", "--admin-rate", "0"})
		if err == nil {
			stop := t.close
			t.close = func() error { err := stop(); os.RemoveAll(dir); return err }
			return t, nil
		}
		lastErr = err
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// startBaseline starts the bare broadcast server.
func startBaseline(exe string, inProcess bool) (*target, error) {
	if inProcess {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ServeBaseline(ctx, ln) }()
		addr := ln.Addr().String()
		return &target{url: "ws://" + addr, metricsURL: "http://" + addr + "/metrics", inProcess: true, bare: true,
			close: func() error { cancel(); return <-done }}, nil
	}
	var lastErr error
	for range 3 {
		addr, err := freePort()
		if err != nil {
			return nil, err
		}
		t, err := startChild(exe, addr, []string{"bench", "--baseline-server", addr})
		if err == nil {
			t.bare = true
			return t, nil
		}
		lastErr = err
	}
	return nil, lastErr
}
