package bridge

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/conclave/conclave/control"
)

// Outbox timing.
const (
	// settleDelay is how long the outbox waits after the client's
	// notifications/initialized: Claude Code loses pushes sent right after
	// it.
	settleDelay = 500 * time.Millisecond
	// initFallback starts the outbox anyway this long after initialize
	// if the client never sends notifications/initialized.
	initFallback = 5 * time.Second
	// retryMin and retryMax bound the pause before retrying a send that
	// mcp-go refused because its queue was full (a control.Backoff).
	retryMin = 100 * time.Microsecond
	retryMax = 20 * time.Millisecond
)

// note is one queued notification.
type note struct {
	method string
	params map[string]any // nil for none
}

// sendFunc sends one notification to the client, or returns why not.
type sendFunc func(method string, params map[string]any) error

// outbox is the bridge's one way to the client: an unbounded FIFO of
// notifications, drained by run. push never blocks and is safe for
// concurrent use.
type outbox struct {
	send sendFunc
	log  *slog.Logger

	wake      chan struct{} // 1-buffered: something was pushed
	ready     chan struct{} // closed settleDelay after the client is initialized
	readyOnce sync.Once

	// mu guards queue.
	mu    sync.Mutex
	queue []note
}

func newOutbox(send sendFunc, log *slog.Logger) *outbox {
	return &outbox{send: send, log: log, wake: make(chan struct{}, 1), ready: make(chan struct{})}
}

// push queues a notification.
func (o *outbox) push(method string, params map[string]any) {
	o.mu.Lock()
	o.queue = append(o.queue, note{method, params})
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// setReady lets run start sending, settleDelay from now. Safe to call
// more than once.
func (o *outbox) setReady() {
	o.readyOnce.Do(func() { time.AfterFunc(settleDelay, func() { close(o.ready) }) })
}

// run sends queued notifications in order until ctx ends, retrying each
// until mcp-go accepts it.
func (o *outbox) run(ctx context.Context) {
	select {
	case <-o.ready:
	case <-ctx.Done():
		return
	}
	var batch []note
	for {
		o.mu.Lock()
		batch, o.queue = o.queue, batch[:0]
		o.mu.Unlock()
		for i := range batch {
			if !o.deliver(ctx, batch[i]) {
				return
			}
			batch[i] = note{} // let the params go
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-o.wake:
		case <-ctx.Done():
			return
		}
	}
}

// deliver sends n, retrying while the client's queue is full. It returns
// false if ctx ended first.
func (o *outbox) deliver(ctx context.Context, n note) bool {
	pause := control.Backoff{Min: retryMin, Max: retryMax}
	for {
		err := o.send(n.method, n.params)
		if err == nil {
			return true
		}
		if !errors.Is(err, server.ErrNotificationChannelBlocked) {
			// Not initialized or no session: only while starting or
			// stopping. Keep the message and try again.
			o.log.Debug("notification not accepted yet", "method", n.method, "err", err)
		}
		if !pause.Wait(ctx) {
			return false
		}
	}
}
