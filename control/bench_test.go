package control

import (
	"context"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/protocol"
)

// benchBodies are what agents post: code, with quotes, backslashes,
// newlines, tabs and <, > and & (which the server escapes), and plain
// prose.
var benchBodies = []string{
	"func (s *Server) f(a, b int) bool {\n\tif a < b && b > 0 {\n\t\treturn fmt.Errorf(\"%s: \\\"x\\\" %q\", op, s.id) // ok ✓\n\t}\n\treturn <-ch != nil\n}\n<div class=\"m\">Tom &amp; Jerry — café 🚀</div>\n",
	"The deploy of build 4711 finished on all three regions; the error rate is back under 0.1% and latency is flat. " + strings.Repeat("x", 90),
}

// BenchmarkConnDeliveries measures a Conn's read path per delivery: a
// loopback WebSocket server writes b.N channel_msg deliveries (the
// server's own encoding, code and plain bodies in turn), each in its own
// message as at low load, or 64 to a message as the server coalesces
// them when a reader is behind, and the benchmark reads them from Events.
func BenchmarkConnDeliveries(b *testing.B) {
	for _, per := range []int{1, 64} {
		name := "single"
		if per > 1 {
			name = "coalesced"
		}
		b.Run(name, func(b *testing.B) { benchDeliveries(b, per) })
	}
}

func benchDeliveries(b *testing.B, perMessage int) {
	f := newFake(b)
	start := make(chan int)
	f.serve = func(ctx context.Context, s *fakeSession) {
		var n int
		select {
		case n = <-start:
		case <-ctx.Done():
			return
		}
		var msg []byte
		for i := range n {
			if len(msg) > 0 {
				msg = append(msg, '\n')
			}
			body := benchBodies[i%len(benchBodies)]
			msg = protocol.AppendDelivery(msg, "ops", "bob/laptop/main", &body, nil, 1767225600000+int64(i), uint64(i+1))
			if (i+1)%perMessage == 0 || i == n-1 {
				// No deadline: coder/websocket allocates for one, and
				// the allocations counted should be the client's.
				if s.ws.Write(context.Background(), websocket.MessageText, msg) != nil {
					return
				}
				msg = msg[:0]
			}
		}
		s.read(ctx) // until the client leaves
	}
	c := dialFake(b, f, nil)
	b.ReportAllocs()
	b.ResetTimer()
	start <- b.N
	for i := range b.N {
		ev, ok := <-c.Events()
		if !ok {
			b.Fatalf("connection ended after %d deliveries: %v", i, c.Err())
		}
		if ev.Seq != uint64(i+1) || ev.Body == nil {
			b.Fatalf("delivery %d: %+v", i, ev)
		}
	}
	b.StopTimer()
}
