package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/protocol"
)

// Concurrency of the setup phases.
const (
	registerWorkers = 32
	connectWorkers  = 64
	joinWorkers     = 64
)

// Run runs the bench opts.Runs times, each against a fresh server (and,
// with Baseline, a fresh bare server), and returns the medians. Every
// phase is bounded in time; ctx ends it early.
func Run(ctx context.Context, opts Options) (*Result, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.Exe == "" && !o.InProcess {
		if o.Exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find the conclave binary: %w", err)
		}
	}
	if o.ServerURL != "" && !o.KeepUsers {
		if err := checkAdmin(ctx, o); err != nil {
			return nil, err
		}
	}
	b := &bencher{o: o, pr: newProgress(o.Progress, o.ProgressTTY)}
	defer b.pr.done()
	var runs []Result
	for i := range o.Runs {
		b.run = i + 1
		r, err := b.conclave(ctx)
		if err != nil {
			return nil, err
		}
		if o.CompareBodies {
			// The same load with plain bodies, right after: the ratio
			// of the two is what code-like bodies cost.
			b.o.Bodies = BodiesPlain
			pr, err := b.conclave(ctx)
			b.o.Bodies = o.Bodies
			if err != nil {
				return nil, fmt.Errorf("plain bodies: %w", err)
			}
			r.Plain = &Partial{DeliveriesPerS: pr.DeliveriesPerS, ServerCPUCores: pr.ServerCPUCores,
				DeliveriesPerServerCPUS: pr.DeliveriesPerServerCPUS, Latency: pr.Latency,
				ServerBytesPerSession: pr.ServerBytesPerSession, ServerPeakRSS: pr.ServerPeakRSS,
				FramesPerWrite: pr.FramesPerWrite, Dropped: pr.Dropped}
			if pr.DeliveriesPerServerCPUS > 0 {
				r.CodeVsPlain = round(r.DeliveriesPerServerCPUS/pr.DeliveriesPerServerCPUS, 3)
			}
		}
		if o.Baseline {
			p, err := b.baseline(ctx)
			if err != nil {
				return nil, fmt.Errorf("baseline: %w", err)
			}
			r.Baseline = &p
			if p.DeliveriesPerServerCPUS > 0 {
				r.Ratio = round(r.DeliveriesPerServerCPUS/p.DeliveriesPerServerCPUS, 3)
			}
		}
		runs = append(runs, r)
	}
	if len(runs) == 1 {
		return &runs[0], nil
	}
	m := median(runs)
	return &m, nil
}

type bencher struct {
	o   Options
	run int
	pr  *progress
}

// checkAdmin makes sure the bench users can be removed before making any.
func checkAdmin(ctx context.Context, o Options) error {
	conn, err := adminDial(ctx, o)
	if err != nil {
		return err
	}
	defer conn.Close()
	if !conn.Admin() {
		return fmt.Errorf("%s is not a server admin on %s, so the bench users could not be removed afterwards; pass --keep-users to leave them", o.Admin.User, o.ServerURL)
	}
	return nil
}

func adminDial(ctx context.Context, o Options) (*control.Conn, error) {
	return control.Dial(ctx, &control.Options{URL: o.ServerURL, Key: o.Admin.Key, PinnedServerID: o.Admin.ServerID,
		Session: "bench-admin-" + strconv.Itoa(os.Getpid()), ClientName: "conclave-bench"})
}

func runID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// parallel calls f(0..n-1) from workers goroutines and returns the first
// error; after an error or the end of ctx no new calls start.
func parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				mu.Lock()
				stop := first != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := ctx.Err(); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// conclave runs the load against a conclave server.
func (b *bencher) conclave(ctx context.Context) (res Result, err error) {
	o := b.o
	b.pr.phase(b.run, o.Runs, "conclave", "starting the server")
	var t *target
	if o.ServerURL != "" {
		t = &target{url: o.ServerURL, metricsURL: metricsURLFor(o.ServerURL), close: func() error { return nil }}
	} else if t, err = startConclave(o.Exe, o.InProcess, o.Logger); err != nil {
		return res, err
	}
	defer func() {
		if cerr := t.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	id := runID()
	hc := &http.Client{}
	subs := make([]*client, o.Sessions)
	pubs := make([]*client, o.Publishers)
	var all []*client
	for i := range subs {
		subs[i] = &client{user: fmt.Sprintf("bench-%s-%d", id, i), done: make(chan struct{})}
		all = append(all, subs[i])
	}
	for i := range pubs {
		pubs[i] = &client{user: fmt.Sprintf("bench-%s-p%d", id, i), pub: true, done: make(chan struct{})}
		all = append(all, pubs[i])
	}
	for _, c := range all {
		_, c.key, _ = ed25519.GenerateKey(rand.Reader)
	}
	defer func() {
		for _, c := range all {
			if c.conn != nil {
				c.conn.CloseNow()
			}
		}
		if o.ServerURL != "" && !o.KeepUsers {
			if rerr := removeUsers(o, all); rerr != nil && err == nil {
				err = rerr
			}
		}
	}()
	rss0, rssOK := t.rss()

	// Registration, outside every timed window.
	b.pr.phase(b.run, o.Runs, "conclave", fmt.Sprintf("registering %d identities", len(all)))
	err = parallel(ctx, len(all), registerWorkers, func(i int) error {
		c := all[i]
		if _, err := c.login(ctx, t.url, hc, true); err != nil {
			return fmt.Errorf("register: %w", err)
		}
		c.conn.CloseNow()
		c.conn = nil
		return nil
	})
	if err != nil {
		return res, err
	}

	// Handshakes of registered identities, timed.
	b.pr.phase(b.run, o.Runs, "conclave", fmt.Sprintf("connecting %d sessions", len(all)))
	readers := make([]*frameReader, len(all))
	start := time.Now()
	err = parallel(ctx, len(all), connectWorkers, func(i int) error {
		fr, err := all[i].login(ctx, t.url, hc, false)
		if err != nil {
			return fmt.Errorf("log in: %w", err)
		}
		readers[i] = fr
		return nil
	})
	if err != nil {
		return res, err
	}
	hsElapsed := time.Since(start)

	// Channels and subscriptions.
	names := make([]string, o.Channels)
	for i := range names {
		names[i] = fmt.Sprintf("bench-%s-c%d", id, i)
	}
	pr0 := readers[len(subs)]
	for i, name := range names {
		if _, err := pr0.request(ctx, &protocol.Frame{Type: protocol.TCreateChannel, ID: "c" + strconv.Itoa(i), Channel: name}); err != nil {
			return res, fmt.Errorf("create channel %s: %w", name, err)
		}
	}
	b.pr.phase(b.run, o.Runs, "conclave", "joining channels")
	err = parallel(ctx, len(all), joinWorkers, func(i int) error {
		chans := names
		if i < len(subs) {
			chans = names[i%o.Channels : i%o.Channels+1]
		}
		for k, name := range chans {
			if _, err := readers[i].request(ctx, &protocol.Frame{Type: protocol.TJoin, ID: "j" + strconv.Itoa(k), Channel: name}); err != nil {
				return fmt.Errorf("%s: join %s: %w", all[i].user, name, err)
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	res.ServerBytesPerSession = b.idleMemory(ctx, t, rss0, rssOK, len(all))

	// Deliveries per message: the channel's subscribers, and the other
	// publishers (subscribed to every channel so that they may post).
	perChannel := make([]int, o.Channels)
	for i := range subs {
		perChannel[i%o.Channels]++
	}
	bodies, err := makeBodies(o.Bodies, o.Size)
	if err != nil {
		return res, err
	}
	ts := make([][]template, len(pubs))
	for p, c := range pubs {
		for k, name := range names {
			ts[p] = append(ts[p], newTemplate(c.conn, name, "", bodies, false, perChannel[k]+len(pubs)-1))
		}
	}
	lr, err := b.drive(ctx, t, "conclave", all, ts)
	if err != nil {
		return res, err
	}
	res.Sessions, res.Channels, res.Publishers, res.Size, res.Window, res.Rate = o.Sessions, o.Channels, o.Publishers, o.Size, o.Window, o.Rate
	res.Bodies = o.Bodies
	res.ServerPeakRSS = lr.peakRSS
	res.DurationS = o.Duration.Seconds()
	res.DeliveriesPerS = lr.perS
	res.ServerCPUCores = lr.cores
	res.DeliveriesPerServerCPUS = lr.perCPU
	res.Latency = lr.lat
	res.HandshakesPerS = round(float64(len(all))/hsElapsed.Seconds(), 0)
	res.Dropped = lr.dropped
	res.ClientCPUCores = lr.clientCores
	res.FramesPerWrite = lr.framesPerWrite
	res.InProcess = o.InProcess
	for _, c := range pubs {
		res.RateLimited += int64(c.rateLimited.Load())
	}
	return res, nil
}

// idleMemory waits for the server to settle and returns its resident
// memory growth per session since before the first registration.
func (b *bencher) idleMemory(ctx context.Context, t *target, rss0 int64, ok bool, n int) float64 {
	if !ok {
		return 0
	}
	select {
	case <-time.After(500 * time.Millisecond):
	case <-ctx.Done():
	}
	rss1, ok := t.rss()
	if !ok {
		return 0
	}
	return round(float64(rss1-rss0)/float64(n), 0)
}

// removeUsers removes the bench identities from a remote server.
func removeUsers(o Options, all []*client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := adminDial(ctx, o)
	if err != nil {
		return fmt.Errorf("remove the bench users: %w", err)
	}
	defer conn.Close()
	var failed atomic.Int64
	parallel(ctx, len(all), 16, func(i int) error {
		if _, err := conn.Request(ctx, &protocol.Frame{Type: protocol.TUserRemove, User: all[i].user}); err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) || pe.Code != protocol.CodeNotFound {
				failed.Add(1)
			}
		}
		return nil
	})
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("could not remove %d of the %d bench users (named bench-…)", n, len(all))
	}
	return nil
}

// baseline runs the same load against the bare broadcast server.
func (b *bencher) baseline(ctx context.Context) (p Partial, err error) {
	o := b.o
	b.pr.phase(b.run, o.Runs, "baseline", "starting the bare server")
	t, err := startBaseline(o.Exe, o.InProcess)
	if err != nil {
		return p, err
	}
	defer func() {
		if cerr := t.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	rss0, rssOK := t.rss()
	hc := &http.Client{}
	subs := make([]*client, o.Sessions)
	for i := range subs {
		subs[i] = &client{done: make(chan struct{})}
	}
	pubConns := make([][]*client, o.Publishers)
	var conns []*client
	defer func() {
		for _, c := range append(conns, subs...) {
			if c.conn != nil {
				c.conn.CloseNow()
			}
		}
	}()
	bodies, err := makeBodies(o.Bodies, o.Size)
	if err != nil {
		return p, err
	}
	b.pr.phase(b.run, o.Runs, "baseline", fmt.Sprintf("connecting %d sessions", len(subs)))
	err = parallel(ctx, len(subs), connectWorkers, func(i int) error {
		conn, err := dialWS(ctx, fmt.Sprintf("%s/?sub=%d", t.url, i%o.Channels), hc)
		subs[i].conn = conn
		return err
	})
	if err != nil {
		return p, err
	}
	perChannel := make([]int, o.Channels)
	for i := range subs {
		perChannel[i%o.Channels]++
	}
	ts := make([][]template, o.Publishers)
	for q := range pubConns {
		for k := range o.Channels {
			conn, err := dialWS(ctx, fmt.Sprintf("%s/?pub=%d", t.url, k), hc)
			if err != nil {
				return p, err
			}
			c := &client{conn: conn}
			conns = append(conns, c)
			from := fmt.Sprintf("bench-00000000-p%d/m/s", q)
			ts[q] = append(ts[q], newTemplate(conn, fmt.Sprintf("bench-00000000-c%d", k), from, bodies, true, perChannel[k]))
		}
	}
	p.ServerBytesPerSession = b.idleMemory(ctx, t, rss0, rssOK, len(subs))
	lr, err := b.drive(ctx, t, "baseline", subs, ts)
	if err != nil {
		return p, err
	}
	p.DeliveriesPerS, p.ServerCPUCores, p.DeliveriesPerServerCPUS = lr.perS, lr.cores, lr.perCPU
	p.Latency, p.Dropped, p.FramesPerWrite, p.ServerPeakRSS = lr.lat, lr.dropped, lr.framesPerWrite, lr.peakRSS
	return p, nil
}

// loadResult is what drive measured.
type loadResult struct {
	perS, cores, perCPU, clientCores float64
	framesPerWrite                   float64
	lat                              Latency
	peakRSS                          int64 // the server's peak resident memory (VmHWM), 0 if unknown
	dropped                          int64
}

// drive starts a reader per client and the publishers, warms up,
// measures, stops the publishers, waits for the deliveries still owed
// (at most drainFor), closes every connection and adds it all up.
func (b *bencher) drive(ctx context.Context, t *target, what string, readers []*client, ts [][]template) (loadResult, error) {
	o := b.o
	var lr loadResult
	l := newLoad(o.Window, len(ts))
	var rwg sync.WaitGroup
	for _, c := range readers {
		rwg.Add(1)
		go func() { defer rwg.Done(); c.readLoop(l) }()
	}
	closeAll := func() {
		for _, c := range readers {
			c.conn.CloseNow()
		}
		for _, pts := range ts {
			for _, tm := range pts {
				tm.conn.CloseNow()
			}
		}
	}
	defer func() { closeAll(); rwg.Wait() }()

	sum := func(f func(*client) uint64) (n uint64) {
		for _, c := range readers {
			n += f(c)
		}
		return n
	}
	stopProgress := b.pr.watch(b.run, o.Runs, what, l, t, func() uint64 { return sum(func(c *client) uint64 { return c.total.Load() }) })
	defer stopProgress()

	pubErr := make(chan error, len(ts))
	var pwg sync.WaitGroup
	t0 := l.clock()
	for i, pts := range ts {
		pwg.Add(1)
		go func() { defer pwg.Done(); pubErr <- l.publish(i, len(ts), o.Rate, pts, t0) }()
	}
	if what == "conclave" && o.onTarget != nil {
		o.onTarget(t.metricsURL)
	}
	stopPublishers := func() {
		select {
		case <-l.stop:
		default:
			close(l.stop)
		}
	}
	sleep := func(d time.Duration) error {
		tm := time.NewTimer(d)
		defer tm.Stop()
		select {
		case <-tm.C:
			return nil
		case err := <-pubErr:
			if err == nil {
				err = errors.New("publisher stopped")
			}
			return fmt.Errorf("publisher: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := sleep(o.Warmup); err != nil {
		stopPublishers()
		return lr, err
	}
	frames0, writes0, countsOK := t.writeCounts()
	cpu0, cpuOK := t.cpu()
	self0, _ := procCPU("self")
	w0 := time.Now()
	l.measuring.Store(true)
	err := sleep(o.Duration)
	l.measuring.Store(false)
	elapsed := time.Since(w0)
	cpu1, _ := t.cpu()
	self1, _ := procCPU("self")
	lr.peakRSS, _ = t.peakRSS()
	frames1, writes1, countsOK1 := t.writeCounts()
	if countsOK && countsOK1 && writes1 > writes0 {
		lr.framesPerWrite = round((frames1-frames0)/(writes1-writes0), 1)
	}
	stopPublishers()
	if err != nil {
		return lr, err
	}
	// Publishers block only in a write; closing the connections ends it.
	pdone := make(chan struct{})
	go func() { pwg.Wait(); close(pdone) }()
	select {
	case <-pdone:
	case <-time.After(10 * time.Second):
		closeAll()
		<-pdone
	}
	drainEnd := time.Now().Add(drainFor)
	for l.inflight.Load() > 0 && time.Now().Before(drainEnd) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	closeAll()
	rwg.Wait()

	var h hist
	for _, c := range readers {
		h.merge(&c.lat)
	}
	measured := sum(func(c *client) uint64 { return c.measured.Load() })
	received := sum(func(c *client) uint64 { return c.total.Load() })
	lr.perS = round(float64(measured)/elapsed.Seconds(), 0)
	if cpu := (cpu1 - cpu0).Seconds(); cpuOK && cpu > 0 {
		lr.cores = round(cpu/elapsed.Seconds(), 3)
		lr.perCPU = round(float64(measured)/cpu, 0)
	}
	if !t.inProcess {
		lr.clientCores = round((self1-self0).Seconds()/elapsed.Seconds(), 3)
	}
	lr.lat = Latency{P50: ms(h.quantile(0.50)), P90: ms(h.quantile(0.90)), P99: ms(h.quantile(0.99)), P999: ms(h.quantile(0.999)),
		Max: ms(time.Duration(h.max))}
	lr.dropped = l.expected.Load() - int64(received)
	l.mu.Lock()
	refusal := l.refusal
	l.mu.Unlock()
	if refusal != "" && measured == 0 {
		return lr, fmt.Errorf("the server refused the posts: %s", refusal)
	}
	return lr, nil
}

func ms(d time.Duration) float64 { return round(float64(d)/1e6, 3) }

func round(v float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	if v >= 0 {
		return float64(int64(v*p+0.5)) / p
	}
	return -float64(int64(-v*p+0.5)) / p
}

// median returns the per-field medians of runs, except dropped and
// rate_limited, which take the maximum so that one bad run is not hidden.
func median(runs []Result) Result {
	med := func(f func(*Result) float64) float64 {
		vs := make([]float64, len(runs))
		for i := range runs {
			vs[i] = f(&runs[i])
		}
		return medianOf(vs)
	}
	maxOf := func(f func(*Result) int64) int64 {
		var m int64
		for i := range runs {
			m = max(m, f(&runs[i]))
		}
		return m
	}
	r := runs[0]
	r.PerRun = runs
	r.Runs = len(runs)
	r.DeliveriesPerS = med(func(r *Result) float64 { return r.DeliveriesPerS })
	r.ServerCPUCores = med(func(r *Result) float64 { return r.ServerCPUCores })
	r.DeliveriesPerServerCPUS = med(func(r *Result) float64 { return r.DeliveriesPerServerCPUS })
	r.Latency = Latency{
		P50:  med(func(r *Result) float64 { return r.Latency.P50 }),
		P90:  med(func(r *Result) float64 { return r.Latency.P90 }),
		P99:  med(func(r *Result) float64 { return r.Latency.P99 }),
		P999: med(func(r *Result) float64 { return r.Latency.P999 }),
		Max:  med(func(r *Result) float64 { return r.Latency.Max }),
	}
	r.ServerPeakRSS = int64(med(func(r *Result) float64 { return float64(r.ServerPeakRSS) }))
	r.HandshakesPerS = med(func(r *Result) float64 { return r.HandshakesPerS })
	r.ServerBytesPerSession = med(func(r *Result) float64 { return r.ServerBytesPerSession })
	r.ClientCPUCores = med(func(r *Result) float64 { return r.ClientCPUCores })
	r.FramesPerWrite = med(func(r *Result) float64 { return r.FramesPerWrite })
	r.Dropped = maxOf(func(r *Result) int64 { return r.Dropped })
	r.RateLimited = maxOf(func(r *Result) int64 { return r.RateLimited })
	if r.Baseline != nil {
		r.Baseline = medianPartial(runs, func(r *Result) *Partial { return r.Baseline })
		r.Ratio = med(func(r *Result) float64 { return r.Ratio })
	}
	if r.Plain != nil {
		r.Plain = medianPartial(runs, func(r *Result) *Partial { return r.Plain })
		r.CodeVsPlain = med(func(r *Result) float64 { return r.CodeVsPlain })
	}
	return r
}

// medianOf returns the median of vs (which it sorts).
func medianOf(vs []float64) float64 {
	sort.Float64s(vs)
	if n := len(vs); n%2 == 1 {
		return vs[n/2]
	} else {
		return (vs[n/2-1] + vs[n/2]) / 2
	}
}

// medianPartial returns the per-field medians of the runs' partials
// picked by part (dropped: the maximum).
func medianPartial(runs []Result, part func(*Result) *Partial) *Partial {
	bl := func(f func(*Partial) float64) float64 {
		vs := make([]float64, len(runs))
		for i := range runs {
			if p := part(&runs[i]); p != nil {
				vs[i] = f(p)
			}
		}
		return medianOf(vs)
	}
	var dropped int64
	for i := range runs {
		if p := part(&runs[i]); p != nil {
			dropped = max(dropped, p.Dropped)
		}
	}
	return &Partial{
		DeliveriesPerS:          bl(func(p *Partial) float64 { return p.DeliveriesPerS }),
		ServerCPUCores:          bl(func(p *Partial) float64 { return p.ServerCPUCores }),
		DeliveriesPerServerCPUS: bl(func(p *Partial) float64 { return p.DeliveriesPerServerCPUS }),
		Latency: Latency{
			P50:  bl(func(p *Partial) float64 { return p.Latency.P50 }),
			P90:  bl(func(p *Partial) float64 { return p.Latency.P90 }),
			P99:  bl(func(p *Partial) float64 { return p.Latency.P99 }),
			P999: bl(func(p *Partial) float64 { return p.Latency.P999 }),
			Max:  bl(func(p *Partial) float64 { return p.Latency.Max }),
		},
		ServerBytesPerSession: bl(func(p *Partial) float64 { return p.ServerBytesPerSession }),
		ServerPeakRSS:         int64(bl(func(p *Partial) float64 { return float64(p.ServerPeakRSS) })),
		FramesPerWrite:        bl(func(p *Partial) float64 { return p.FramesPerWrite }),
		Dropped:               dropped,
	}
}
