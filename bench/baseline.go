package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// The bare broadcast server is the yardstick: the least a WebSocket
// fan-out on coder/websocket can do. A subscriber connects to /?sub=N, a
// publisher to /?pub=N (one connection per channel), and every message a
// publisher sends is relayed as is to channel N's subscribers. There is
// no authentication, no decoding, no storage and no acknowledgement. Like
// the conclave server it gives each connection a bounded queue and one
// writer that coalesces whatever is queued into one WebSocket message
// (frames joined by newlines), and drops a connection whose queue is full.

const (
	bareQueueLen    = 1024
	bareMaxCoalesce = 256
)

type bareServer struct {
	mu   sync.RWMutex
	subs map[int][]*bareConn
	wg   sync.WaitGroup

	frames, writes atomic.Int64 // for /metrics
}

type bareConn struct {
	srv  *bareServer
	conn *websocket.Conn
	ch   int

	mu    sync.Mutex
	queue [][]byte
	dead  bool
	wake  chan struct{}
}

// ServeBaseline runs the bare broadcast server on ln until ctx ends. It
// answers /health with 200.
func ServeBaseline(ctx context.Context, ln net.Listener) error {
	s := &bareServer{subs: make(map[int][]*bareConn)}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "bare_frames_out_total %d\nbare_writes_total %d\n", s.frames.Load(), s.writes.Load())
	})
	mux.HandleFunc("/", s.serve)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	s.closeAll()
	s.wg.Wait()
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *bareServer) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, subs := range s.subs {
		for _, c := range subs {
			c.conn.CloseNow()
		}
	}
}

func (s *bareServer) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true, Subprotocols: []string{"conclave.v1"}})
	if err != nil {
		return
	}
	conn.SetReadLimit(readLimit)
	s.wg.Add(1)
	defer s.wg.Done()
	if p := q.Get("pub"); p != "" {
		ch, _ := strconv.Atoi(p)
		s.publisher(conn, ch)
		return
	}
	ch, _ := strconv.Atoi(q.Get("sub"))
	c := &bareConn{srv: s, conn: conn, ch: ch, wake: make(chan struct{}, 1)}
	s.mu.Lock()
	s.subs[ch] = append(s.subs[ch], c)
	s.mu.Unlock()
	defer s.remove(c)
	// The reader handles control frames and notices the peer leaving.
	done := conn.CloseRead(context.Background())
	c.writeLoop(done)
}

func (s *bareServer) remove(c *bareConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	subs := s.subs[c.ch]
	for i, o := range subs {
		if o == c {
			subs[i] = subs[len(subs)-1]
			s.subs[c.ch] = subs[:len(subs)-1]
			break
		}
	}
}

// publisher relays every message from conn to the channel's subscribers.
func (s *bareServer) publisher(conn *websocket.Conn, ch int) {
	defer conn.CloseNow()
	ctx := context.Background()
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			return
		}
		s.mu.RLock()
		for _, c := range s.subs[ch] {
			c.enqueue(b)
		}
		s.mu.RUnlock()
	}
}

func (c *bareConn) enqueue(b []byte) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= bareQueueLen {
		c.dead = true
		c.mu.Unlock()
		c.conn.CloseNow() // slow consumer
		return
	}
	c.queue = append(c.queue, b)
	first := len(c.queue) == 1
	c.mu.Unlock()
	if first {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

func (c *bareConn) writeLoop(done context.Context) {
	defer c.conn.CloseNow()
	var spare [][]byte
	ctx := context.Background()
	for {
		select {
		case <-c.wake:
		case <-done.Done():
			return
		}
		for {
			c.mu.Lock()
			batch := c.queue
			c.queue = spare[:0]
			c.mu.Unlock()
			if len(batch) == 0 {
				spare = batch
				break
			}
			for off := 0; off < len(batch); off += bareMaxCoalesce {
				if err := c.write(ctx, batch[off:min(off+bareMaxCoalesce, len(batch))]); err != nil {
					return
				}
			}
			c.srv.frames.Add(int64(len(batch)))
			c.srv.writes.Add(int64((len(batch) + bareMaxCoalesce - 1) / bareMaxCoalesce))
			clear(batch)
			spare = batch[:0]
		}
	}
}

// msgPool holds the buffers coalesced messages are built in.
var msgPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// write sends frames as one message, separated by newlines.
func (c *bareConn) write(ctx context.Context, frames [][]byte) error {
	if len(frames) == 1 {
		return c.conn.Write(ctx, websocket.MessageText, frames[0])
	}
	bp := msgPool.Get().(*[]byte)
	msg := (*bp)[:0]
	for i, b := range frames {
		if i > 0 {
			msg = append(msg, '\n')
		}
		msg = append(msg, b...)
	}
	err := c.conn.Write(ctx, websocket.MessageText, msg)
	*bp = msg
	msgPool.Put(bp)
	return err
}
