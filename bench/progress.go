package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress writes the progress line: rewritten in place on a terminal,
// otherwise one line every few seconds.
type progress struct {
	w   io.Writer
	tty bool

	mu    sync.Mutex
	width int // of the line now shown (tty)
}

func newProgress(w io.Writer, tty bool) *progress { return &progress{w: w, tty: tty} }

func (p *progress) show(line string) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	pad := ""
	if n := p.width - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
	p.width = len(line)
}

// phase shows a setup step.
func (p *progress) phase(run, runs int, what, msg string) {
	p.show(fmt.Sprintf("run %d/%d %s: %s", run, runs, what, msg))
}

// watch shows the load's progress until stop is called.
func (p *progress) watch(run, runs int, what string, l *load, t *target, total func() uint64) (stop func()) {
	if p.w == nil {
		return func() {}
	}
	every := 2 * time.Second
	if p.tty {
		every = 500 * time.Millisecond
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		lastN, lastT := total(), time.Now()
		lastCPU, cpuOK := t.cpu()
		start := lastT
		for {
			select {
			case <-quit:
				return
			case now := <-tk.C:
				n := total()
				cpu, ok := t.cpu()
				dt := now.Sub(lastT).Seconds()
				state := "warming up"
				select {
				case <-l.stop:
					state = "draining"
				default:
					if l.measuring.Load() {
						state = "measuring"
					}
				}
				line := fmt.Sprintf("run %d/%d %s: %s %4.1fs | %s deliveries/s | %d in flight",
					run, runs, what, state, now.Sub(start).Seconds(), si(float64(n-lastN)/dt), l.inflight.Load())
				if ok && cpuOK {
					line += fmt.Sprintf(" | server %.2f cores", (cpu-lastCPU).Seconds()/dt)
				}
				p.show(line)
				lastN, lastT, lastCPU, cpuOK = n, now, cpu, ok
			}
		}
	}()
	return func() { close(quit); <-done }
}

// done ends the progress line.
func (p *progress) done() {
	if p.w == nil || !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.width > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
		p.width = 0
	}
}

// si formats v with a k or M suffix.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
