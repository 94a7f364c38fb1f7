package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBench runs a short bench against a child `conclave serve` and a
// child bare baseline server, and reads its --json line.
func TestBench(t *testing.T) {
	r := cli(t, nil, "bench", "--sessions", "12", "--channels", "3", "--size", "64", "--window", "30",
		"--duration", "1s", "--warmup", "200ms", "--baseline", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var res struct {
		Sessions       int     `json:"sessions"`
		DeliveriesPerS float64 `json:"deliveries_per_s"`
		ServerCPUCores float64 `json:"server_cpu_cores"`
		PerCPU         float64 `json:"deliveries_per_server_cpu_s"`
		Handshakes     float64 `json:"handshakes_per_s"`
		BytesPerSess   float64 `json:"server_bytes_per_session"`
		PeakRSS        int64   `json:"server_peak_rss_bytes"`
		Dropped        *int64  `json:"dropped"`
		Latency        struct {
			P99 float64 `json:"p99"`
		} `json:"latency_ms"`
		Baseline *struct {
			DeliveriesPerS float64 `json:"deliveries_per_s"`
			Dropped        int64   `json:"dropped"`
		} `json:"baseline"`
		Ratio float64 `json:"ratio"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line of stdout is not the JSON object: %v\n%s", err, r.stdout)
	}
	if res.Sessions != 12 || res.Dropped == nil || *res.Dropped != 0 || res.DeliveriesPerS <= 0 || res.Handshakes <= 0 {
		t.Errorf("result %s", lines[len(lines)-1])
	}
	// The memory per idle session is a difference of two RSS readings:
	// with 12 sessions a collection in between can make it negative, so
	// only the peak RSS shows that /proc was read.
	if res.ServerCPUCores <= 0 || res.PerCPU <= 0 || res.PeakRSS <= 0 || !strings.Contains(lines[len(lines)-1], `"server_bytes_per_session":`) {
		t.Errorf("no server CPU or memory read from /proc: %s", lines[len(lines)-1])
	}
	if res.Baseline == nil || res.Baseline.DeliveriesPerS <= 0 || res.Baseline.Dropped != 0 || res.Ratio <= 0 {
		t.Errorf("baseline: %s", lines[len(lines)-1])
	}
	if !strings.Contains(r.stderr, "run 1/1 conclave:") {
		t.Errorf("no progress on stderr: %q", r.stderr)
	}
}

func TestBenchRefusals(t *testing.T) {
	dir := t.TempDir()
	env := []string{"CONCLAVE_CONFIG_DIR=" + dir}
	fails(t, 1, "--keep-users", env, "bench", "--server", "ws://127.0.0.1:1")
	fails(t, 1, "loopback", env, "bench", "--baseline-server", "0.0.0.0:0")
	fails(t, 1, "--sessions must be at least --channels", env, "bench", "--sessions", "2", "--channels", "3")
}
