package server

import (
	"io"
	"math"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/conclave/conclave/protocol"
)

// scrape GETs /metrics from env's main listener.
func scrape(t *testing.T, env *testEnv) string {
	t.Helper()
	resp, err := http.Get(env.ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d, %v", resp.StatusCode, err)
	}
	return string(b)
}

// sample returns the value of the series line that starts with series
// (name and labels exactly as exported).
func sample(t *testing.T, page, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("/metrics has no series %s:\n%s", series, page)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s = %q: %v", series, m[1], err)
	}
	return v
}

// TestMetricsLintClean: /metrics passes Prometheus' own linter (promlint,
// as `promtool check metrics` runs it), after traffic that fills every
// family, on a data-dir server and an ephemeral one.
func TestMetricsLintClean(t *testing.T) {
	for _, ephemeral := range []bool{false, true} {
		env := newTestEnv(t, Config{Ephemeral: ephemeral, Version: "v1.2.3", Revision: "abc123"})
		a := env.register("aaron", "wa", "s")
		a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: "ops"})
		a.ok(&protocol.Frame{Type: protocol.TJoin, Channel: "ops"})
		a.ok(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "ops", Body: body("hi")})
		a.fail(&protocol.Frame{Type: protocol.TChannelMsg, Channel: "nope", Body: body("x")}, protocol.CodeNotFound)
		page := scrape(t, env)
		problems, err := promlint.New(strings.NewReader(page)).Lint()
		if err != nil {
			t.Fatalf("promlint cannot parse /metrics: %v\n%s", err, page)
		}
		for _, p := range problems {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
		if strings.Contains(page, "NaN") {
			t.Errorf("/metrics carries a NaN:\n%s", page)
		}
	}
}

// TestMetricsProcessAndBuild: the series a Prometheus user expects from
// any Go server, and the build's identity.
func TestMetricsProcessAndBuild(t *testing.T) {
	env := newTestEnv(t, Config{Version: "v1.2.3", Revision: "abc123"})
	page := scrape(t, env)
	now := float64(time.Now().UnixMilli()) / 1e3
	if st := sample(t, page, "process_start_time_seconds"); st > now+1 || st < now-3600 {
		t.Errorf("process_start_time_seconds = %f, now %f", st, now)
	}
	if n := sample(t, page, "process_open_fds"); n < 3 {
		t.Errorf("process_open_fds = %v", n)
	}
	if n := sample(t, page, "process_max_fds"); n < sample(t, page, "process_open_fds") {
		t.Errorf("process_max_fds = %v", n)
	}
	runtime.GC()
	page = scrape(t, env)
	if n := sample(t, page, "go_gc_duration_seconds_count"); n < 1 {
		t.Errorf("go_gc_duration_seconds_count = %v after a GC", n)
	}
	sample(t, page, `go_gc_duration_seconds{quantile="0.5"}`)
	if !strings.Contains(page, "# TYPE go_gc_duration_seconds summary\n") {
		t.Error("go_gc_duration_seconds is not a summary")
	}
	if v := sample(t, page, `conclave_build_info{version="v1.2.3",revision="abc123",goversion="`+runtime.Version()+`"}`); v != 1 {
		t.Errorf("conclave_build_info = %v", v)
	}
	sample(t, page, `go_info{version="`+runtime.Version()+`"}`)
}

// TestMetricsSnapshotTimestamp: the newest snapshot's time, 0 before the
// first one (so `time() - conclave_snapshot_timestamp_seconds > N` fires
// on a server that never wrote one), and absent on an ephemeral server.
func TestMetricsSnapshotTimestamp(t *testing.T) {
	env := newTestEnv(t, Config{SnapshotEvery: 2})
	if v := sample(t, scrape(t, env), "conclave_snapshot_timestamp_seconds"); v != 0 {
		t.Errorf("before any snapshot: %v, want 0", v)
	}
	before := float64(time.Now().Add(-time.Second).Unix())
	a := env.register("aaron", "wa", "s")
	for _, c := range []string{"c1", "c2", "c3"} {
		a.ok(&protocol.Frame{Type: protocol.TCreateChannel, Channel: c})
	}
	var v float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if v = sample(t, scrape(t, env), "conclave_snapshot_timestamp_seconds"); v != 0 {
			break
		}
	}
	if v < before || v > float64(time.Now().Unix()+1) || math.IsNaN(v) {
		t.Errorf("after snapshots: %v, want about now (%v)", v, before)
	}
	eph := newTestEnv(t, Config{Ephemeral: true})
	if strings.Contains(scrape(t, eph), "conclave_snapshot_") {
		t.Error("an ephemeral server exports a snapshot series")
	}
}
