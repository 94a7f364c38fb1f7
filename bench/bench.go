package bench

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Options configures [Run]. Zero fields take the defaults of the default
// workload: 1000 sessions over 10 channels, one publisher, 200-byte
// bodies, 1000 messages in flight, 2 s of warm-up and 8 s measured.
type Options struct {
	Sessions   int           // subscriber sessions, spread evenly over the channels (default 1000)
	Channels   int           // default 10
	Publishers int           // each posts round-robin over every channel (default 1)
	Size       int           // body bytes, at least 32 (default 200)
	Bodies     string        // BodiesCode (the default) or BodiesPlain
	Window     int           // messages sent but not yet delivered to all their recipients (default 1000)
	Rate       float64       // messages per second over all publishers; 0 = as fast as the window allows
	Duration   time.Duration // measured time (default 8 s)
	Warmup     time.Duration // load before measuring (default 2 s); negative = none
	Runs       int           // repetitions; figures are medians (default 1)

	// InProcess runs the server (and the baseline) in this process: quick,
	// but the CPU and memory figures then include the clients.
	InProcess bool
	// ServerURL loads a running server instead of starting one. Its CPU
	// and memory come from its /metrics, if that is reachable.
	ServerURL string
	// KeepUsers leaves the bench identities on ServerURL; otherwise Admin
	// removes them afterwards.
	KeepUsers bool
	// Admin is a server admin's identity on ServerURL.
	Admin *Admin
	// Baseline also runs the bare WebSocket broadcast server.
	Baseline bool
	// CompareBodies also runs the load with plain bodies right after each
	// run with code-like ones (Bodies must be BodiesCode) and reports the
	// ratio of their deliveries per server CPU-second.
	CompareBodies bool

	// Exe is the conclave binary started for the child servers (default:
	// this executable).
	Exe string
	// Progress receives a progress line while the bench runs (nil: none);
	// with ProgressTTY it is rewritten in place.
	Progress    io.Writer
	ProgressTTY bool
	// Logger receives the in-process server's logs (nil: discarded).
	Logger *slog.Logger

	// onTarget, if set, is called with the conclave server's /metrics URL
	// once the load is running (tests scrape it).
	onTarget func(metricsURL string)
}

// Admin is a server admin's key and the server id it is pinned to.
type Admin struct {
	User     string
	Key      ed25519.PrivateKey
	ServerID string
}

// Limits that keep every run bounded.
const (
	maxSessions = 100_000
	maxChannels = 10_000
	maxRuns     = 20
	maxDuration = time.Hour
	drainFor    = 5 * time.Second // wait for the last deliveries after the load stops
)

func (o Options) withDefaults() (Options, error) {
	if o.Sessions == 0 {
		o.Sessions = 1000
	}
	if o.Channels == 0 {
		o.Channels = 10
	}
	if o.Publishers == 0 {
		o.Publishers = 1
	}
	if o.Size == 0 {
		o.Size = 200
	}
	if o.Bodies == "" {
		o.Bodies = BodiesCode
	}
	if o.Window == 0 {
		o.Window = 1000
	}
	if o.Duration == 0 {
		o.Duration = 8 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = 2 * time.Second
	}
	if o.Warmup < 0 {
		o.Warmup = 0
	}
	if o.Runs == 0 {
		o.Runs = 1
	}
	switch {
	case o.Sessions < 1 || o.Sessions > maxSessions:
		return o, fmt.Errorf("--sessions must be 1 to %d", maxSessions)
	case o.Channels < 1 || o.Channels > maxChannels:
		return o, fmt.Errorf("--channels must be 1 to %d", maxChannels)
	case o.Sessions < o.Channels:
		return o, errors.New("--sessions must be at least --channels (every channel needs a subscriber)")
	case o.Publishers < 1 || o.Publishers > 1000:
		return o, errors.New("--publishers must be 1 to 1000")
	case o.Size < stampLen || o.Size > 1<<20:
		return o, fmt.Errorf("--size must be %d to %d bytes (the body carries a %d-byte stamp)", stampLen, 1<<20, stampLen)
	case o.Bodies != BodiesCode && o.Bodies != BodiesPlain:
		return o, fmt.Errorf("--bodies must be %s or %s", BodiesCode, BodiesPlain)
	case o.CompareBodies && o.Bodies != BodiesCode:
		return o, errors.New("--compare-bodies compares code bodies with plain ones: leave --bodies at code")
	case o.Window < 1 || o.Window > 1<<20:
		return o, errors.New("--window must be 1 to 1048576")
	case o.Rate < 0:
		return o, errors.New("--rate must not be negative")
	case o.Duration < 0 || o.Duration > maxDuration || o.Warmup > maxDuration:
		return o, errors.New("--duration and --warmup must be at most 1h")
	case o.Runs < 1 || o.Runs > maxRuns:
		return o, fmt.Errorf("--runs must be 1 to %d", maxRuns)
	case o.ServerURL != "" && o.InProcess:
		return o, errors.New("--server and --in-process are mutually exclusive")
	case o.ServerURL != "" && !o.KeepUsers && o.Admin == nil:
		return o, errors.New("--server needs a server admin to remove the bench users afterwards; pass --keep-users to leave them")
	}
	return o, nil
}

// Result is what one run measured, or the medians of several. Its JSON
// form is the one line `conclave bench --json` prints.
type Result struct {
	Sessions   int     `json:"sessions"`
	Channels   int     `json:"channels"`
	Publishers int     `json:"publishers"`
	Size       int     `json:"size"`
	Bodies     string  `json:"bodies"`
	Window     int     `json:"window"`
	Rate       float64 `json:"rate,omitempty"`
	DurationS  float64 `json:"duration_s"`

	DeliveriesPerS          float64  `json:"deliveries_per_s"`
	ServerCPUCores          float64  `json:"server_cpu_cores"`
	DeliveriesPerServerCPUS float64  `json:"deliveries_per_server_cpu_s"`
	Latency                 Latency  `json:"latency_ms"`
	HandshakesPerS          float64  `json:"handshakes_per_s"`
	ServerBytesPerSession   float64  `json:"server_bytes_per_session"`
	ServerPeakRSS           int64    `json:"server_peak_rss_bytes,omitempty"`
	Dropped                 int64    `json:"dropped"`
	RateLimited             int64    `json:"rate_limited"`
	ClientCPUCores          float64  `json:"client_cpu_cores"`
	FramesPerWrite          float64  `json:"frames_per_write,omitempty"`
	InProcess               bool     `json:"in_process,omitempty"`
	Baseline                *Partial `json:"baseline,omitempty"`
	Ratio                   float64  `json:"ratio,omitempty"`
	Plain                   *Partial `json:"plain,omitempty"`         // with CompareBodies: the same load, plain bodies
	CodeVsPlain             float64  `json:"code_vs_plain,omitempty"` // deliveries per server CPU-s, code ÷ plain
	Runs                    int      `json:"runs,omitempty"`

	// PerRun holds each run's figures when Runs > 1 (not in the JSON).
	PerRun []Result `json:"-"`
}

// Partial is the figures of the baseline server, or of the plain-body
// run of CompareBodies.
type Partial struct {
	DeliveriesPerS          float64 `json:"deliveries_per_s"`
	ServerCPUCores          float64 `json:"server_cpu_cores"`
	DeliveriesPerServerCPUS float64 `json:"deliveries_per_server_cpu_s"`
	Latency                 Latency `json:"latency_ms"`
	ServerBytesPerSession   float64 `json:"server_bytes_per_session"`
	ServerPeakRSS           int64   `json:"server_peak_rss_bytes,omitempty"`
	FramesPerWrite          float64 `json:"frames_per_write,omitempty"`
	Dropped                 int64   `json:"dropped"`
}

// Latency is publish-to-delivery latency in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}
