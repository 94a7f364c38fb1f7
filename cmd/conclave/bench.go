package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/conclave/conclave/bench"
)

// BenchCmd is the load generator.
type BenchCmd struct {
	Sessions   int           `help:"Subscriber sessions, spread evenly over the channels." default:"1000"`
	Channels   int           `help:"Channels." default:"10"`
	Publishers int           `help:"Publishing sessions, each posting round-robin over every channel." default:"1"`
	Size       int           `help:"Message body size in bytes (at least 32)." default:"200"`
	Bodies     string        `help:"Message bodies: code (code, diffs, shell and Markdown: quotes, newlines, tabs, <, &, Unicode) or plain (ASCII with nothing to escape)." enum:"code,plain" default:"code"`
	Window     int           `help:"Most messages published but not yet delivered to all their subscribers." default:"1000"`
	Rate       float64       `help:"Messages per second over all publishers, each stamped with its scheduled send time; 0 = as fast as the window allows." default:"0"`
	Duration   time.Duration `help:"Measured time." default:"8s"`
	Warmup     time.Duration `help:"Load before measuring." default:"2s"`
	Runs       int           `help:"Runs, each on a fresh server; with more than one every figure is the median." default:"1"`
	InProcess  bool          `name:"in-process" help:"Run the server in this process (quick; CPU and memory figures then include the clients)."`
	Server     string        `placeholder:"URL" help:"Load a running server instead of starting one (identities bench-<run>-N, removed afterwards by you as a server admin)."`
	KeepUsers  bool          `name:"keep-users" help:"With --server: leave the bench identities on the server."`
	Baseline   bool          `help:"Also run the same load against a bare WebSocket broadcast server and report the ratio."`
	Compare    bool          `name:"compare-bodies" help:"Also run the same load with plain bodies after each run with code ones, and report the ratio."`

	BaselineServer string `name:"baseline-server" hidden:"" placeholder:"ADDR" help:"Serve the bare broadcast server on ADDR (loopback) until SIGTERM."`
}

// Run runs the bench and prints its results: text, or with --json one
// compact object as the last line of stdout.
func (c *BenchCmd) Run(ctx context.Context, g *Globals) error {
	if c.BaselineServer != "" {
		return serveBaseline(ctx, c.BaselineServer)
	}
	opts := bench.Options{
		Sessions: c.Sessions, Channels: c.Channels, Publishers: c.Publishers, Size: c.Size, Bodies: c.Bodies,
		Window: c.Window, Rate: c.Rate, Duration: c.Duration, Warmup: c.Warmup, Runs: c.Runs,
		InProcess: c.InProcess, ServerURL: c.Server, KeepUsers: c.KeepUsers, Baseline: c.Baseline, CompareBodies: c.Compare,
		Progress: g.Stderr, ProgressTTY: isTerminal(g.Stderr),
	}
	if c.Warmup == 0 {
		opts.Warmup = -1
	}
	if c.Duration <= 0 {
		return errors.New("--duration must be positive")
	}
	if c.Server != "" && !c.KeepUsers {
		admin, err := g.benchAdmin(c.Server)
		if err != nil {
			return err
		}
		opts.Admin = admin
	}
	res, err := bench.Run(ctx, opts)
	if err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(res)
	}
	printBench(g, res)
	return nil
}

// benchAdmin is this machine's identity on serverURL, which removes the
// bench users afterwards.
func (g *Globals) benchAdmin(serverURL string) (*bench.Admin, error) {
	dir, cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	srv, err := cfg.SelectServer(serverURL)
	if err != nil {
		return nil, fmt.Errorf("%w (the bench users are removed afterwards by a server admin registered here; or pass --keep-users)", err)
	}
	key, err := g.loadKey(dir)
	if err != nil {
		return nil, err
	}
	return &bench.Admin{User: srv.Username, Key: key, ServerID: srv.ServerID}, nil
}

// serveBaseline runs the bare broadcast server for a parent bench.
func serveBaseline(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--baseline-server %s: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--baseline-server %s: the bare server listens on a loopback address only", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return bench.ServeBaseline(ctx, ln)
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func printBench(g *Globals, r *bench.Result) {
	plural := func(n int, s string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, s)
		}
		return fmt.Sprintf("%d %ss", n, s)
	}
	load := "as fast as the window allows"
	if r.Rate > 0 {
		load = fmt.Sprintf("%g messages/s", r.Rate)
	}
	runs := ""
	if r.Runs > 1 {
		runs = fmt.Sprintf(", medians of %d runs", r.Runs)
	}
	where := ""
	if r.InProcess {
		where = " (in process: CPU and memory include the clients)"
	}
	g.printf("%s over %s, %s, %d-byte %s bodies, window %d, %s, %gs measured%s%s\n",
		plural(r.Sessions, "session"), plural(r.Channels, "channel"), plural(r.Publishers, "publisher"),
		r.Size, r.Bodies, r.Window, load, r.DurationS, runs, where)
	row := func(k, v string) { g.printf("  %-38s %s\n", k, v) }
	if len(r.PerRun) > 1 {
		for i, p := range r.PerRun {
			line := fmt.Sprintf("deliveries/s %s, per server CPU-s %s, p99 %.2f ms, p99.9 %.2f ms, peak RSS %s, handshakes/s %s, dropped %d",
				num(p.DeliveriesPerS), num(p.DeliveriesPerServerCPUS), p.Latency.P99, p.Latency.P999, mib(p.ServerPeakRSS), num(p.HandshakesPerS), p.Dropped)
			if p.Baseline != nil {
				line += fmt.Sprintf("; baseline %s, per CPU-s %s, p99 %.2f ms, p99.9 %.2f ms; ratio %.3f", num(p.Baseline.DeliveriesPerS),
					num(p.Baseline.DeliveriesPerServerCPUS), p.Baseline.Latency.P99, p.Baseline.Latency.P999, p.Ratio)
			}
			if p.Plain != nil {
				line += fmt.Sprintf("; plain bodies per CPU-s %s, p99 %.2f ms; code/plain %.3f", num(p.Plain.DeliveriesPerServerCPUS), p.Plain.Latency.P99, p.CodeVsPlain)
			}
			row(fmt.Sprintf("run %d", i+1), line)
		}
	}
	row("deliveries/s", num(r.DeliveriesPerS))
	row("server CPU", fmt.Sprintf("%.2f cores", r.ServerCPUCores))
	row("deliveries per server CPU-s", num(r.DeliveriesPerServerCPUS))
	row("latency p50 / p90 / p99 / p99.9 / max", latency(r.Latency))
	row("handshakes/s", num(r.HandshakesPerS))
	row("server memory per idle session", fmt.Sprintf("%.1f KiB", r.ServerBytesPerSession/1024))
	row("server peak RSS", mib(r.ServerPeakRSS))
	row("dropped deliveries", fmt.Sprint(r.Dropped))
	row("rate limited posts", fmt.Sprint(r.RateLimited))
	if b := r.Baseline; b != nil {
		g.printf("bare WebSocket baseline:\n")
		row("deliveries/s", num(b.DeliveriesPerS))
		row("server CPU", fmt.Sprintf("%.2f cores", b.ServerCPUCores))
		row("deliveries per server CPU-s", num(b.DeliveriesPerServerCPUS))
		row("latency p50 / p90 / p99 / p99.9 / max", latency(b.Latency))
		row("server memory per connection", fmt.Sprintf("%.1f KiB", b.ServerBytesPerSession/1024))
		row("server peak RSS", mib(b.ServerPeakRSS))
		row("dropped deliveries", fmt.Sprint(b.Dropped))
		row("ratio (per server CPU-s)", fmt.Sprintf("%.3f", r.Ratio))
	}
	if p := r.Plain; p != nil {
		g.printf("the same load with plain bodies:\n")
		row("deliveries/s", num(p.DeliveriesPerS))
		row("server CPU", fmt.Sprintf("%.2f cores", p.ServerCPUCores))
		row("deliveries per server CPU-s", num(p.DeliveriesPerServerCPUS))
		row("latency p50 / p90 / p99 / p99.9 / max", latency(p.Latency))
		row("server peak RSS", mib(p.ServerPeakRSS))
		row("dropped deliveries", fmt.Sprint(p.Dropped))
		row("code/plain (per server CPU-s)", fmt.Sprintf("%.3f", r.CodeVsPlain))
	}
}

func latency(l bench.Latency) string {
	return fmt.Sprintf("%.2f / %.2f / %.2f / %.2f / %.2f ms", l.P50, l.P90, l.P99, l.P999, l.Max)
}

// mib formats a byte count in MiB ("-" when unknown).
func mib(n int64) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// num formats n with thin groups of three digits: 712 345.
func num(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}
