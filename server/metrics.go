package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/conclave/conclave/protocol"
)

// metrics are the server's counters and histograms, exported on /metrics
// in the Prometheus text format (version 0.0.4). Everything on the hot
// path is a lock-free atomic add.
type metrics struct {
	connections atomic.Int64
	sessions    atomic.Int64
	framesIn    atomic.Int64
	framesOut   atomic.Int64
	writes      atomic.Int64 // WebSocket messages written (frames coalesced)
	messagesIn  atomic.Int64
	deliveries  atomic.Int64
	slowDrops   atomic.Int64 // sessions dropped as slow consumers
	// historyDamaged counts damaged history records found (at start or
	// on a read), each once.
	historyDamaged atomic.Int64

	// fanout is, per write, how long its oldest frame waited in the
	// session's queue, write included.
	fanout histogram

	events, history logMetrics

	// mu guards rejects.
	mu      sync.Mutex
	rejects map[protocol.Code]int64
}

// logMetrics describe one durable log's group commits.
type logMetrics struct {
	append histogram // seconds per commit (write + fsync)
	batch  histogram // records per commit
}

var (
	latencyBounds = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10}
	batchBounds   = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
)

// histogram is a Prometheus histogram with fixed bounds, recorded with
// atomic adds. Values are kept in integer units of unit (1e-9 for
// durations in nanoseconds, 1 for counts).
type histogram struct {
	counts [24]atomic.Int64 // per bound, then +Inf
	sum    atomic.Int64
}

func (h *histogram) observe(bounds []float64, unit float64, v int64) {
	x := float64(v) * unit
	i := sort.SearchFloat64s(bounds, x)
	h.counts[i].Add(1)
	h.sum.Add(v)
}

// total returns the number of observations.
func (h *histogram) total() int64 {
	var n int64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

func (m *metrics) rejected(code protocol.Code) {
	m.mu.Lock()
	if m.rejects == nil {
		m.rejects = make(map[protocol.Code]int64)
	}
	m.rejects[code]++
	m.mu.Unlock()
}

// observeAppend records one event-log group commit.
func (m *metrics) observeAppend(d time.Duration, events int) {
	m.events.append.observe(latencyBounds, 1e-9, int64(d))
	m.events.batch.observe(batchBounds, 1, int64(events))
}

// observeHistoryAppend records one channel-history group commit.
func (m *metrics) observeHistoryAppend(d time.Duration, records int) {
	m.history.append.observe(latencyBounds, 1e-9, int64(d))
	m.history.batch.observe(batchBounds, 1, int64(records))
}

// wrote records a writeLoop's pass over its queue: frames sent in writes
// messages, the oldest queued at since.
func (m *metrics) wrote(frames, writes int, since time.Time) {
	m.framesOut.Add(int64(frames))
	m.writes.Add(int64(writes))
	m.fanout.observe(latencyBounds, 1e-9, int64(time.Since(since)))
}

// MetricsHandler serves /metrics only, for a listener of its own (serve
// --metrics-bind).
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", s.handleMetrics)
	return mux
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	s.writeMetrics(&buf)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(buf.Bytes())
}

func (s *Server) writeMetrics(w io.Writer) {
	m := &s.metrics
	head := func(name, help, typ string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	p := func(name, help, typ string, v any) {
		head(name, help, typ)
		fmt.Fprintf(w, "%s %v\n", name, v)
	}
	p("conclave_sessions", "Live authenticated sessions.", "gauge", m.sessions.Load())
	p("conclave_connections_total", "WebSocket connections accepted.", "counter", m.connections.Load())
	s.mu.RLock()
	channels := s.state.ChannelCount()
	s.mu.RUnlock()
	p("conclave_channels", "Channels.", "gauge", channels)
	p("conclave_frames_in_total", "Request frames received from sessions.", "counter", m.framesIn.Load())
	p("conclave_frames_out_total", "Frames written to sessions.", "counter", m.framesOut.Load())
	p("conclave_writes_total", "WebSocket messages written to sessions (each carries one or more coalesced frames).", "counter", m.writes.Load())
	p("conclave_messages_in_total", "Messages in: posts and whispers accepted.", "counter", m.messagesIn.Load())
	p("conclave_deliveries_total", "Messages out: deliveries of posts and whispers queued to recipients.", "counter", m.deliveries.Load())
	queued := 0
	for _, sess := range s.hub.matching(func(*session) bool { return true }) {
		b, _ := sess.out.usage()
		queued += b
	}
	p("conclave_outbound_queued_bytes", "Bytes queued for sessions and not yet written, summed over sessions (a delivery shared by several counts once for each).", "gauge", queued)
	p("conclave_history_damaged_records_total", "Damaged history records found (at start or on a read), each counted once; readers get a gap there. conclave audit verify names them, conclave repair sets them aside.", "counter", m.historyDamaged.Load())
	p("conclave_slow_consumer_drops_total", "Sessions dropped because their outbound queue went over its budget (--queue-bytes, or 1024 frames).", "counter", m.slowDrops.Load())

	head("conclave_fanout_latency_seconds", "Per write to a session: how long its oldest frame waited from being queued (a post's fan-out) to the end of the write.", "histogram")
	writeHist(w, "conclave_fanout_latency_seconds", "", &m.fanout, latencyBounds, 1e-9)

	head("conclave_eventlog_append_seconds", "Group commits (one write and one fsync) of the event log and of the channel history.", "histogram")
	writeHist(w, "conclave_eventlog_append_seconds", `log="events"`, &m.events.append, latencyBounds, 1e-9)
	writeHist(w, "conclave_eventlog_append_seconds", `log="history"`, &m.history.append, latencyBounds, 1e-9)
	head("conclave_eventlog_batch_records", "Records per group commit (fsync batch size).", "histogram")
	writeHist(w, "conclave_eventlog_batch_records", `log="events"`, &m.events.batch, batchBounds, 1)
	writeHist(w, "conclave_eventlog_batch_records", `log="history"`, &m.history.batch, batchBounds, 1)
	head("conclave_eventlog_events_total", "Events committed to the event log.", "counter")
	fmt.Fprintf(w, "conclave_eventlog_events_total %d\n", m.events.batch.sum.Load())

	if s.store != nil {
		var ts float64
		if t, ok := newestSnapshot(s.store.data.Snapshots()); ok {
			ts = float64(t.UnixMilli()) / 1e3
		}
		p("conclave_snapshot_timestamp_seconds", "Unix time of the newest snapshot (0: none yet).", "gauge", formatFloat(ts))
	}
	head("conclave_build_info", "The running build: version, VCS revision and Go version; always 1.", "gauge")
	fmt.Fprintf(w, "conclave_build_info{version=%q,revision=%q,goversion=%q} 1\n", s.cfg.Version, s.cfg.Revision, runtime.Version())

	m.mu.Lock()
	codes := make([]string, 0, len(m.rejects))
	for c := range m.rejects {
		codes = append(codes, string(c))
	}
	sort.Strings(codes)
	head("conclave_rejected_frames_total", "Error replies and refused handshakes, by code.", "counter")
	for _, c := range codes {
		fmt.Fprintf(w, "conclave_rejected_frames_total{code=%q} %d\n", c, m.rejects[protocol.Code(c)])
	}
	m.mu.Unlock()

	if cpu, ok := selfCPU(); ok {
		p("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter", formatFloat(cpu.Seconds()))
	}
	if rss, ok := selfRSS(); ok {
		p("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", rss)
	}
	p("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", "gauge", formatFloat(processStart()))
	if n, ok := openFDs(); ok {
		p("process_open_fds", "Number of open file descriptors.", "gauge", n)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		p("process_max_fds", "Maximum number of open file descriptors.", "gauge", lim.Cur)
	}

	p("go_goroutines", "Number of goroutines that currently exist.", "gauge", runtime.NumGoroutine())
	head("go_info", "Information about the Go environment.", "gauge")
	fmt.Fprintf(w, "go_info{version=%q} 1\n", runtime.Version())
	gc := debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
	debug.ReadGCStats(&gc)
	head("go_gc_duration_seconds", "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.", "summary")
	for i, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
		fmt.Fprintf(w, "go_gc_duration_seconds{quantile=%q} %s\n", q, formatFloat(gc.PauseQuantiles[i].Seconds()))
	}
	fmt.Fprintf(w, "go_gc_duration_seconds_sum %s\ngo_gc_duration_seconds_count %d\n", formatFloat(gc.PauseTotal.Seconds()), gc.NumGC)
	samples := []rtmetrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/gc/heap/goal:bytes"},
		{Name: "/sched/gomaxprocs:threads"},
	}
	rtmetrics.Read(samples)
	for i, d := range []struct{ name, help string }{
		{"go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and currently in use."},
		{"go_memstats_stack_inuse_bytes", "Number of bytes obtained from system for stack allocator."},
		{"go_memstats_sys_bytes", "Number of bytes obtained from system."},
		{"go_gc_gogc_heap_goal_bytes", "Heap size target for the end of the GC cycle."},
		{"go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting."},
	} {
		if samples[i].Value.Kind() == rtmetrics.KindUint64 {
			p(d.name, d.help, "gauge", samples[i].Value.Uint64())
		}
	}
	p("go_threads", "Number of OS threads created.", "gauge", threadCount())
}

func writeHist(w io.Writer, name, labels string, h *histogram, bounds []float64, unit float64) {
	sep := ""
	if labels != "" {
		sep = ","
	}
	var cum int64
	for i, b := range bounds {
		cum += h.counts[i].Load()
		fmt.Fprintf(w, "%s_bucket{%s%sle=\"%s\"} %d\n", name, labels, sep, formatFloat(b), cum)
	}
	cum += h.counts[len(bounds)].Load()
	fmt.Fprintf(w, "%s_bucket{%s%sle=\"+Inf\"} %d\n", name, labels, sep, cum)
	lb := ""
	if labels != "" {
		lb = "{" + labels + "}"
	}
	fmt.Fprintf(w, "%s_sum%s %s\n%s_count%s %d\n", name, lb, formatFloat(float64(h.sum.Load())*unit), name, lb, cum)
}

func formatFloat(v float64) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// newestSnapshot returns the modification time of the newest snapshot
// file in dir.
func newestSnapshot(dir string) (time.Time, bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return time.Time{}, false
	}
	var newest time.Time
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".zst") || !strings.HasPrefix(e.Name(), "snap-") {
			continue
		}
		if info, err := e.Info(); err == nil && info.ModTime().After(newest) {
			newest = info.ModTime()
		}
	}
	return newest, !newest.IsZero()
}

// processStart is when this process started, in Unix seconds: from
// /proc/self/stat and the boot time in /proc/stat on Linux, else the time
// this package was initialised.
var processStart = sync.OnceValue(func() float64 {
	if t, ok := procStartTime(); ok {
		return t
	}
	return float64(initTime.UnixMilli()) / 1e3
})

var initTime = time.Now()

// procStartTime reads the process's start time from /proc (Linux, whose
// USER_HZ is 100 on every architecture Go supports).
func procStartTime() (float64, bool) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(stat[i+1:]))
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 {
		return 0, false
	}
	ticks, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, false
	}
	all, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(all), "\n") {
		if rest, ok := strings.CutPrefix(line, "btime "); ok {
			boot, err := strconv.ParseUint(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return 0, false
			}
			return float64(boot) + float64(ticks)/100, true
		}
	}
	return 0, false
}

// openFDs counts this process's open file descriptors (Linux).
func openFDs() (int, bool) {
	f, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return 0, false
	}
	return len(names) - 1, true // less the one just opened to read them
}

// threadCount is the number of OS threads the runtime has created.
func threadCount() int {
	n, _ := runtime.ThreadCreateProfile(nil)
	return n
}

// selfCPU reads this process's user + system CPU time.
func selfCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// selfRSS reads this process's resident set size from /proc (Linux).
func selfRSS() (int64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}
