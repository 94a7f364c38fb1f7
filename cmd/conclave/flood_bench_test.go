package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/conclave/conclave/protocol"
)

// BenchmarkSlowReaderFlood replays the slow-reader flood against a real
// `conclave serve` child process: ten sessions that keep reading, slowly
// (16 KiB every 20 ms), a channel that one publisher floods with
// 60 000-byte bodies of '<' (each escaped to six times its size on the
// wire); a reader dropped as a slow consumer reconnects at once, as an
// attacker would. It reports the server's peak resident memory (VmHWM),
// the posts stored and the slow-consumer drops. One iteration is one
// flood of CONCLAVE_FLOOD_SECONDS (default 15) seconds:
//
//	go test ./cmd/conclave -run XXX -bench SlowReaderFlood -benchtime 1x
//
// CONCLAVE_FLOOD_ARGS adds flags to serve (such as --queue-bytes N);
// CONCLAVE_FLOOD_BINARY runs another build of conclave as the server (to
// compare with an older one). A server whose memory passes 1 GiB is
// stopped there, and 1024 is reported.
func BenchmarkSlowReaderFlood(b *testing.B) {
	secs := 15
	if s := os.Getenv("CONCLAVE_FLOOD_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("CONCLAVE_FLOOD_SECONDS=%q: want a number of seconds", s)
		}
		secs = n
	}
	if bin := os.Getenv("CONCLAVE_FLOOD_BINARY"); bin != "" {
		old := binary
		binary = bin
		b.Cleanup(func() { binary = old })
	}
	for i := 0; i < b.N; i++ {
		peak, posts, drops := floodOnce(b, time.Duration(secs)*time.Second)
		b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
		b.ReportMetric(float64(posts)/float64(secs), "posts/s")
		b.ReportMetric(float64(drops), "slow-drops")
	}
}

const rssCeiling = 1 << 30

// floodOnce runs one flood and returns the server's peak resident memory,
// the posts acknowledged and the slow readers dropped.
func floodOnce(b *testing.B, d time.Duration) (peak int64, posts, drops int64) {
	addr, data := freeAddr(b), b.TempDir()
	args := []string{"--rate-limit", "0", "--max-conns-per-ip", "0", "--handshakes-per-ip", "0", "--admin-rate", "0"}
	args = append(args, strings.Fields(os.Getenv("CONCLAVE_FLOOD_ARGS"))...)
	srv := crashServe(b, addr, data, args...)
	pid := srv.cmd.Process.Pid
	url := "ws://" + addr
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()

	pub, err := floodLogin(ctx, url, "publisher", newFloodKey(b), true)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.CloseNow()
	if err := floodRequest(ctx, pub, &protocol.Frame{Type: protocol.TCreateChannel, ID: "c", Channel: "flood"}); err != nil {
		b.Fatal(err)
	}
	if err := floodRequest(ctx, pub, &protocol.Frame{Type: protocol.TJoin, ID: "j", Channel: "flood"}); err != nil {
		b.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 10; r++ {
		key := newFloodKey(b)
		name := fmt.Sprintf("slow%d", r)
		conn, err := floodLogin(ctx, url, name, key, true)
		if err == nil {
			err = floodRequest(ctx, conn, &protocol.Frame{Type: protocol.TJoin, ID: "j", Channel: "flood"})
		}
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				for {
					select {
					case <-stop:
						conn.CloseNow()
						return
					default:
					}
					if err := slowRead(ctx, conn, stop); err != nil {
						break
					}
				}
				conn.CloseNow()
				if conn, err = floodLogin(ctx, url, name, key, false); err == nil {
					err = floodRequest(ctx, conn, &protocol.Frame{Type: protocol.TJoin, ID: "j", Channel: "flood"})
				}
				if err != nil {
					select {
					case <-stop:
					default:
						b.Errorf("%s reconnecting: %v", name, err)
					}
					return
				}
			}
		}()
	}

	// The publisher keeps 32 posts in flight, for d.
	body := strings.Repeat("<", 60_000)
	var acked atomic.Int64
	inflight := make(chan struct{}, 32)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			_, msg, err := pub.Read(ctx)
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(msg), "\n") {
				switch {
				case strings.HasPrefix(line, `{"type":"ack"`):
					acked.Add(1)
					<-inflight
				case strings.HasPrefix(line, `{"type":"error"`):
					b.Errorf("the publisher got %s", line)
					<-inflight
				}
			}
		}
	}()
	b.ResetTimer()
	end := time.Now().Add(d)
	for n := 0; time.Now().Before(end); n++ {
		select {
		case inflight <- struct{}{}:
		case <-readerDone:
			b.Fatal("the publisher's connection ended")
		}
		f := &protocol.Frame{Type: protocol.TChannelMsg, ID: strconv.Itoa(n), Channel: "flood", Body: &body}
		if err := floodSend(ctx, pub, f); err != nil {
			b.Fatal(err)
		}
		if n%16 == 0 {
			if rss := vmHWM(pid); rss > rssCeiling {
				b.Logf("server memory passed %d MiB; stopping the flood", rss>>20)
				break
			}
		}
	}
	b.StopTimer()
	peak = vmHWM(pid)
	drops = int64(strings.Count(srv.logText(), "slow consumer dropped"))
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, l := range strings.Split(string(page), "\n") {
			if strings.HasPrefix(l, "conclave_outbound_queued_bytes ") || strings.HasPrefix(l, "conclave_deliveries_total ") || strings.HasPrefix(l, "conclave_frames_out_total ") {
				b.Log(l)
			}
		}
	}
	close(stop)
	pub.CloseNow()
	wg.Wait()
	<-readerDone
	return peak, acked.Load(), drops
}

// slowRead reads one message at 16 KiB every 20 ms (800 KB/s).
func slowRead(ctx context.Context, conn *websocket.Conn, stop chan struct{}) error {
	_, r, err := conn.Reader(ctx)
	if err != nil {
		return err
	}
	buf := make([]byte, 16<<10)
	for {
		select {
		case <-stop:
			return nil
		case <-time.After(20 * time.Millisecond):
		}
		if _, err := io.ReadFull(r, buf); err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// vmHWM reads the peak resident set size of process pid, in bytes.
func vmHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func newFloodKey(b *testing.B) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// floodLogin opens a session for user (registering it first if register),
// on machine m with handle s.
func floodLogin(ctx context.Context, url, user string, key ed25519.PrivateKey, register bool) (*websocket.Conn, error) {
	conn, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(protocol.MaxMessage)
	fail := func(err error) (*websocket.Conn, error) { conn.CloseNow(); return nil, err }
	if err := floodSend(ctx, conn, &protocol.Frame{Type: protocol.THello, Version: protocol.Version, Session: "s"}); err != nil {
		return fail(err)
	}
	ch, err := floodNext(ctx, conn)
	if err != nil {
		return fail(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	if register {
		if err := floodSend(ctx, conn, &protocol.Frame{Type: protocol.TRegister, Username: user, Machine: "m", Pubkey: pub}); err != nil {
			return fail(err)
		}
	}
	if err := floodSend(ctx, conn, &protocol.Frame{Type: protocol.TAuth, Pubkey: pub, Signature: protocol.SignAuth(key, ch.ServerID, ch.Nonce, "s")}); err != nil {
		return fail(err)
	}
	if f, err := floodNext(ctx, conn); err != nil || f.Type != protocol.TEstablished {
		return fail(fmt.Errorf("login %s: %+v %v", user, f, err))
	}
	return conn, nil
}

// floodRequest sends f and reads until its reply, which must not be an error.
func floodRequest(ctx context.Context, conn *websocket.Conn, f *protocol.Frame) error {
	if err := floodSend(ctx, conn, f); err != nil {
		return err
	}
	for {
		r, err := floodNext(ctx, conn)
		if err != nil {
			return err
		}
		if r.ID == f.ID {
			if r.Type == protocol.TError {
				return fmt.Errorf("%s: %s", f.Type, r.Message)
			}
			return nil
		}
	}
}

func floodSend(ctx context.Context, conn *websocket.Conn, f *protocol.Frame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return conn.Write(ctx, websocket.MessageText, b)
}

// floodNext returns the first frame of the next message.
func floodNext(ctx context.Context, conn *websocket.Conn) (*protocol.Frame, error) {
	_, b, err := conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	fs, err := protocol.DecodeMessage(b)
	if err != nil || len(fs) == 0 {
		return nil, fmt.Errorf("undecodable message: %v", err)
	}
	return fs[0], nil
}
