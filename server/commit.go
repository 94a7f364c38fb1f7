package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/protocol"
)

// maxBatch bounds the commands one group commit takes.
const maxBatch = 512

// op is one command on its way through commitCommands.
type op struct {
	actor projections.Actor
	cmd   projections.Command
	// prepare, if set, runs in commitCommands just before the command is
	// decided, with the state as the command sees it, so that an effect
	// can capture what the command is about to change (a channel's id).
	prepare func(*projections.State)
	// effect runs in commitCommands after the batch is durable and before the
	// next batch is decided; it may touch live sessions.
	effect func()
	done   chan error // nil, *protocol.Error or a storage error
}

// submitPrepared is submit with a prepare step (see op.prepare).
func (s *Server) submitPrepared(ctx context.Context, actor projections.Actor, cmd projections.Command, prepare func(*projections.State), effect func()) error {
	return s.submitOp(ctx, &op{actor: actor, cmd: cmd, prepare: prepare, effect: effect, done: make(chan error, 1)})
}

// submit hands cmd to commitCommands and waits until it is durable (or refused).
func (s *Server) submit(ctx context.Context, actor projections.Actor, cmd projections.Command, effect func()) error {
	return s.submitOp(ctx, &op{actor: actor, cmd: cmd, effect: effect, done: make(chan error, 1)})
}

func (s *Server) submitOp(ctx context.Context, o *op) error {
	if _, isJoin := o.cmd.(projections.Join); !isJoin {
		if err := s.admit.adminEvent(o.actor.User, time.Now()); err != nil {
			return err
		}
	}
	select {
	case s.ops <- o:
	case <-s.stop:
		return protocol.Errorf(protocol.CodeInternal, "server is shutting down")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		// commitCommands still finishes the op; its result is dropped.
		return ctx.Err()
	}
}

// commitCommands is the single writer of the state: it decides, applies
// and commits commands in batches (group commit). It owns s.state's
// mutations and s.store's log.
func (s *Server) commitCommands() {
	defer s.wg.Done()
	batch := make([]*op, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case o := <-s.ops:
			batch = append(batch, o)
		case <-s.stop:
			s.drainOps()
			return
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

// drainOps fails commands still queued at shutdown.
func (s *Server) drainOps() {
	for {
		select {
		case o := <-s.ops:
			o.done <- protocol.Errorf(protocol.CodeInternal, "server is shutting down")
		default:
			return
		}
	}
}

func (s *Server) commit(batch []*op) {
	now := time.Now()
	results := make([]error, len(batch))
	var entries []eventlog.Entry
	applyFailed := error(nil)

	s.mu.Lock()
	next := s.state.LastSeq() + 1
	for i, o := range batch {
		if o.prepare != nil {
			o.prepare(s.state)
		}
		events, perr := s.state.Decide(o.actor, o.cmd, now)
		if perr != nil {
			results[i] = perr
			continue
		}
		for _, ev := range events {
			ev.Actor, ev.TimeMs = o.actor.Path, now.UnixMilli()
			if err := s.state.Apply(next, ev); err != nil {
				applyFailed = fmt.Errorf("apply %s: %w", ev.Type, err)
				break
			}
			next++
			entries = append(entries, eventlog.Entry{TimeMs: ev.TimeMs, Actor: ev.Actor, Type: ev.Type, Data: ev.Data})
		}
		if applyFailed != nil {
			break
		}
	}
	s.mu.Unlock()

	var commitErr error
	switch {
	case applyFailed != nil:
		commitErr = applyFailed
	case len(entries) > 0 && s.store != nil:
		start := time.Now()
		_, commitErr = s.store.log.Append(entries)
		s.metrics.observeAppend(time.Since(start), len(entries))
	}
	if commitErr != nil {
		s.log.Error("event log append failed; the batch is refused and the state rebuilt from disk", "events", len(entries), "err", commitErr)
		s.rebuildAfterFailure()
		for _, o := range batch {
			o.done <- protocol.Errorf(protocol.CodeInternal, "the server could not store this change; nothing was changed, try again")
		}
		return
	}
	for i, o := range batch {
		if results[i] == nil && o.effect != nil {
			o.effect()
		}
		o.done <- results[i]
	}
	if s.store != nil && s.state.LastSeq()-s.store.snapSeq >= uint64(s.cfg.SnapshotEvery) {
		s.mu.RLock()
		err := s.store.snapshot(s.state)
		s.mu.RUnlock()
		if err != nil {
			s.log.Error("snapshot failed", "err", err)
		}
	}
}

// rebuildAfterFailure replaces the in-memory state with what is on disk.
func (s *Server) rebuildAfterFailure() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store == nil {
		// Ephemeral: nothing on disk; an apply failure is a bug. Keep the state.
		return
	}
	state, err := s.store.rebuild(false)
	if err != nil {
		s.log.Error("rebuilding state from disk failed; keeping the in-memory state", "err", err)
		return
	}
	s.state = state
}

// reaper drops sessions that have been silent for IdleTimeout.
func (s *Server) reaper() {
	defer s.wg.Done()
	var pings sync.WaitGroup
	defer pings.Wait()
	slots := make(chan struct{}, maxPings)
	t := time.NewTicker(s.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			s.hub.reap(now.Add(-s.cfg.IdleTimeout))
			s.relay.expire(now)
			s.admit.sweep(now)
			s.pingQuiet(now.Add(-s.cfg.ReapInterval), slots, &pings)
		case <-s.stop:
			return
		}
	}
}

// maxPings bounds the WebSocket pings in flight at once.
const maxPings = 256

// pingQuiet sends a WebSocket ping to every session quiet since cutoff, so
// that a healthy client that only listens answers with a pong, which
// counts as liveness (see serveWS). Each ping waits for its pong in a
// goroutine of its own, at most one reap interval; at most maxPings are
// in flight (a session skipped now is pinged at the next round).
func (s *Server) pingQuiet(cutoff time.Time, slots chan struct{}, pings *sync.WaitGroup) {
	for _, sess := range s.hub.matching(func(sess *session) bool { return sess.lastSeen.Load() < cutoff.UnixNano() }) {
		select {
		case slots <- struct{}{}:
		default:
			return
		}
		pings.Add(1)
		go func() {
			defer pings.Done()
			ctx, cancel := context.WithTimeout(s.stopCtx, s.cfg.ReapInterval)
			sess.conn.Ping(ctx)
			cancel()
			<-slots
		}()
	}
}
