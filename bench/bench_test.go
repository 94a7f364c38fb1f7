package bench

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/protocol"
	"github.com/conclave/conclave/server"
)

// quick is a short, small workload.
func quick() Options {
	return Options{Sessions: 20, Channels: 2, Publishers: 2, Size: 64, Window: 50,
		Duration: time.Second, Warmup: 200 * time.Millisecond}
}

func TestRunInProcess(t *testing.T) {
	o := quick()
	o.InProcess, o.Baseline, o.CompareBodies = true, true, true
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dropped != 0 || r.Baseline.Dropped != 0 {
		t.Errorf("dropped %d (baseline %d), want 0", r.Dropped, r.Baseline.Dropped)
	}
	if r.DeliveriesPerS <= 0 || r.Baseline.DeliveriesPerS <= 0 || r.HandshakesPerS <= 0 {
		t.Errorf("no throughput: %+v", r)
	}
	if r.Latency.P50 <= 0 || r.Latency.P50 > r.Latency.P99 || r.Latency.P99 > r.Latency.Max {
		t.Errorf("latency %+v is not ordered", r.Latency)
	}
	if r.Ratio <= 0 {
		t.Errorf("ratio %v", r.Ratio)
	}
	if r.Bodies != BodiesCode || r.Plain == nil || r.Plain.Dropped != 0 || r.Plain.DeliveriesPerS <= 0 || r.CodeVsPlain <= 0 {
		t.Errorf("bodies %q, plain %+v, code/plain %v: want code bodies compared with plain ones", r.Bodies, r.Plain, r.CodeVsPlain)
	}
	if r.ServerPeakRSS <= 0 || r.Baseline.ServerPeakRSS <= 0 {
		t.Errorf("peak RSS %d (baseline %d), want both", r.ServerPeakRSS, r.Baseline.ServerPeakRSS)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sessions", "channels", "publishers", "size", "window", "duration_s", "deliveries_per_s",
		"server_cpu_cores", "deliveries_per_server_cpu_s", "latency_ms", "handshakes_per_s", "server_bytes_per_session",
		"dropped", "rate_limited", "baseline", "ratio", "bodies", "server_peak_rss_bytes", "plain", "code_vs_plain"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON has no %q: %s", k, b)
		}
	}
	for _, k := range []string{"p50", "p90", "p99", "p99_9", "max"} {
		if _, ok := m["latency_ms"].(map[string]any)[k]; !ok {
			t.Errorf("latency_ms has no %q: %s", k, b)
		}
	}
	for _, k := range []string{"deliveries_per_s", "deliveries_per_server_cpu_s", "dropped"} {
		if _, ok := m["baseline"].(map[string]any)[k]; !ok {
			t.Errorf("baseline has no %q: %s", k, b)
		}
	}
}

// TestBodies checks the bodies the bench sends: exact size, valid UTF-8,
// room for the stamp, all different, and for code every character a
// JSON encoder escapes, with the two client encodings decoding to the
// same body.
func TestBodies(t *testing.T) {
	for _, size := range []int{32, 33, 64, 200, 1000, 4096} {
		for _, kind := range []string{BodiesCode, BodiesPlain} {
			bs, err := makeBodies(kind, size)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for v, b := range bs {
				if len(b) != size || !utf8.ValidString(b) || b[:stampLen] != strings.Repeat("0", stampLen) {
					t.Fatalf("%s body %d of %d bytes: %q", kind, v, size, b)
				}
				seen[b] = true
				for _, enc := range [][]byte{appendPostBody(nil, b, 0), appendPostBody(nil, b, 1)} {
					var got string
					if err := json.Unmarshal(enc, &got); err != nil || got != b {
						t.Fatalf("%s body %q encoded as %s decodes to %q, %v", kind, b, enc, got, err)
					}
				}
			}
			if size >= 200 && len(seen) != len(bs) {
				t.Errorf("%s bodies of %d bytes: %d different of %d", kind, size, len(seen), len(bs))
			}
		}
	}
	all := strings.Join(must(makeBodies(BodiesCode, 1000)), "")
	for _, c := range []string{"\"", "\\", "\n", "\t", "<", ">", "&", "é", "🚀"} {
		if !strings.Contains(all, c) {
			t.Errorf("code bodies never hold %q", c)
		}
	}
	if _, err := makeBodies("xml", 200); err == nil {
		t.Error("makeBodies(xml) did not fail")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// metricSeries are the /metrics series SPEC §8 asks for, as exported.
var metricSeries = []string{
	"conclave_sessions ", "conclave_channels ", "conclave_messages_in_total ", "conclave_deliveries_total ",
	"conclave_frames_in_total ", "conclave_frames_out_total ", "conclave_writes_total ",
	`conclave_fanout_latency_seconds_bucket{le="0.001"} `, "conclave_fanout_latency_seconds_count ",
	`conclave_eventlog_append_seconds_bucket{log="events",le="+Inf"} `,
	`conclave_eventlog_append_seconds_count{log="history"} `,
	`conclave_eventlog_batch_records_bucket{log="history",le="64"} `,
	"conclave_eventlog_events_total ", "conclave_snapshot_timestamp_seconds ",
	"# TYPE conclave_rejected_frames_total counter", "process_cpu_seconds_total ", "process_resident_memory_bytes ",
}

// TestMetricsDuringRun loads a running server (--server, --keep-users)
// and scrapes its /metrics while the load runs.
func TestMetricsDuringRun(t *testing.T) {
	srv, err := server.Open(server.Config{DataDir: t.TempDir(), RateLimit: -1, MaxConnsPerIP: -1, HandshakesPerIP: -1, AdminRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	t.Cleanup(func() {
		hs.Close()
		srv.Shutdown(context.Background())
	})
	var mu sync.Mutex
	var page string
	o := quick()
	o.ServerURL, o.KeepUsers = "ws://"+ln.Addr().String(), true
	o.onTarget = func(metricsURL string) {
		time.Sleep(100 * time.Millisecond) // let some posts through
		resp, err := http.Get(metricsURL)
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		mu.Lock()
		page = string(b)
		mu.Unlock()
	}
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dropped != 0 {
		t.Errorf("dropped %d", r.Dropped)
	}
	if r.ServerCPUCores <= 0 {
		t.Errorf("no server CPU from /metrics: %+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range metricSeries {
		if !strings.Contains(page, "\n"+s) {
			t.Errorf("/metrics has no %q", s)
		}
	}
	if n := scrapeLine(page, "conclave_sessions"); n < 22 {
		t.Errorf("/metrics during the run counts %v sessions, want at least the bench's 22", n)
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", page)
	}
}

func scrapeLine(page, name string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	return -1
}

func TestOptionsRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"fewer sessions than channels", func(o *Options) { o.Sessions, o.Channels = 2, 3 }, "at least --channels"},
		{"tiny body", func(o *Options) { o.Size = 8 }, "--size"},
		{"negative rate", func(o *Options) { o.Rate = -1 }, "--rate"},
		{"too long", func(o *Options) { o.Duration = 2 * time.Hour }, "at most 1h"},
		{"server without an admin", func(o *Options) { o.ServerURL = "ws://127.0.0.1:1" }, "--keep-users"},
		{"server and in-process", func(o *Options) { o.ServerURL, o.InProcess, o.KeepUsers = "ws://127.0.0.1:1", true, true }, "mutually exclusive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := quick()
			tc.mod(&o)
			_, err := Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	for v := int64(1); v <= 1000; v++ {
		h.record(v * 1000) // 1µs .. 1ms
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, time.Millisecond}} {
		got := h.quantile(tc.q)
		if d := got - tc.want; d < 0 || d > tc.want/16 {
			t.Errorf("quantile(%v) = %v, want %v (within 1/16 above)", tc.q, got, tc.want)
		}
	}
	var o hist
	o.record(5e9)
	h.merge(&o)
	if h.quantile(1) != 5*time.Second || h.n != 1001 {
		t.Errorf("after merge: max %v, n %d", h.quantile(1), h.n)
	}
}

func TestMedian(t *testing.T) {
	runs := []Result{
		{DeliveriesPerS: 3, Dropped: 0, Baseline: &Partial{DeliveriesPerS: 9}, Ratio: 0.5},
		{DeliveriesPerS: 1, Dropped: 7, Baseline: &Partial{DeliveriesPerS: 7}, Ratio: 0.9},
		{DeliveriesPerS: 2, Dropped: 0, Baseline: &Partial{DeliveriesPerS: 8}, Ratio: 0.7},
	}
	m := median(runs)
	if m.DeliveriesPerS != 2 || m.Baseline.DeliveriesPerS != 8 || m.Ratio != 0.7 || m.Runs != 3 {
		t.Errorf("median = %+v", m)
	}
	if m.Dropped != 7 {
		t.Errorf("dropped = %d, want the worst run's 7", m.Dropped)
	}
}

// TestServerRemovesUsers runs against a running server as a server admin
// and checks that the bench identities are gone afterwards.
func TestServerRemovesUsers(t *testing.T) {
	srv, err := server.Open(server.Config{DataDir: t.TempDir(), RateLimit: -1, MaxConnsPerIP: -1, HandshakesPerIP: -1, AdminRate: -1,
		Admins: []server.Admin{{User: "root"}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	t.Cleanup(func() {
		hs.Close()
		srv.Shutdown(context.Background())
	})
	url := "ws://" + ln.Addr().String()
	_, key, _ := ed25519.GenerateKey(nil)
	ctx := context.Background()
	root, err := control.Dial(ctx, &control.Options{URL: url, Key: key, Session: "s", Register: &control.Registration{Username: "root", Machine: "m"}})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	o := Options{Sessions: 4, Channels: 1, Duration: 300 * time.Millisecond, Warmup: -1, ServerURL: url,
		Admin: &Admin{User: "root", Key: key, ServerID: root.ServerID()}}
	r, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dropped != 0 {
		t.Errorf("dropped %d", r.Dropped)
	}
	users, err := root.Request(ctx, &protocol.Frame{Type: protocol.TListUsers})
	if err != nil {
		t.Fatal(err)
	}
	if len(users.Users) != 1 || users.Users[0] != "root" {
		t.Errorf("users after the bench: %v, want only root", users.Users)
	}
}
