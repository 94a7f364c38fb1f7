package server

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conclave/conclave/protocol"
)

// metrics are the server's counters, exported on /metrics in the
// Prometheus text format.
type metrics struct {
	connections atomic.Int64
	sessions    atomic.Int64
	framesIn    atomic.Int64
	framesOut   atomic.Int64
	messagesIn  atomic.Int64
	deliveries  atomic.Int64

	// mu guards the maps and histograms below.
	mu          sync.Mutex
	rejects     map[protocol.Code]int64
	appendCount int64
	appendSum   time.Duration
	batchEvents int64
}

func (m *metrics) rejected(code protocol.Code) {
	m.mu.Lock()
	if m.rejects == nil {
		m.rejects = make(map[protocol.Code]int64)
	}
	m.rejects[code]++
	m.mu.Unlock()
}

func (m *metrics) observeAppend(d time.Duration, events int) {
	m.mu.Lock()
	m.appendCount++
	m.appendSum += d
	m.batchEvents += int64(events)
	m.mu.Unlock()
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	m := &s.metrics
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	p := func(name, help, typ string, v any) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, help, name, typ, name, v)
	}
	p("conclave_sessions", "Live authenticated sessions.", "gauge", m.sessions.Load())
	p("conclave_connections_total", "WebSocket connections accepted.", "counter", m.connections.Load())
	p("conclave_frames_in_total", "Request frames received from sessions.", "counter", m.framesIn.Load())
	p("conclave_frames_out_total", "Frames written to sessions.", "counter", m.framesOut.Load())
	p("conclave_messages_in_total", "Posts and whispers accepted.", "counter", m.messagesIn.Load())
	p("conclave_deliveries_total", "Messages queued to recipients.", "counter", m.deliveries.Load())
	s.mu.RLock()
	channels := len(s.state.Channels())
	s.mu.RUnlock()
	p("conclave_channels", "Channels.", "gauge", channels)
	m.mu.Lock()
	fmt.Fprintf(w, "# HELP conclave_eventlog_append_seconds Event-log group commits (write + fsync).\n# TYPE conclave_eventlog_append_seconds summary\n")
	fmt.Fprintf(w, "conclave_eventlog_append_seconds_sum %g\nconclave_eventlog_append_seconds_count %d\n", m.appendSum.Seconds(), m.appendCount)
	p("conclave_eventlog_events_total", "Events committed.", "counter", m.batchEvents)
	codes := make([]string, 0, len(m.rejects))
	for c := range m.rejects {
		codes = append(codes, string(c))
	}
	sort.Strings(codes)
	fmt.Fprintf(w, "# HELP conclave_rejected_frames_total Error replies by code.\n# TYPE conclave_rejected_frames_total counter\n")
	for _, c := range codes {
		fmt.Fprintf(w, "conclave_rejected_frames_total{code=%q} %d\n", c, m.rejects[protocol.Code(c)])
	}
	m.mu.Unlock()
}
