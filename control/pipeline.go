package control

import (
	"context"
	"errors"

	"github.com/conclave/conclave/protocol"
)

// Pipeline sends requests on a Conn without waiting for each reply before
// the next: at most its window are unanswered at once, and each reply
// goes to the Pipeline's reply func in the order the requests were sent.
// A post waits a round trip for its ack; a pipeline of posts waits one
// for all of them. The server handles a session's requests in the order
// they arrive, so posts sent through a Pipeline are stored, and numbered,
// in that order (unless the server refuses one, which the reply func
// sees).
//
// A Pipeline is used by one goroutine. The reply func runs in it, inside
// [Pipeline.Send] and [Pipeline.Flush].
type Pipeline struct {
	c       *Conn
	window  int
	onReply func(req, reply *protocol.Frame, err error) error
	flight  []inFlight // oldest first
}

type inFlight struct {
	req  *protocol.Frame
	call *Call
}

// NewPipeline returns a Pipeline on c that keeps at most window requests
// unanswered (at least 1). onReply gets each request as it was given to
// Send, with its reply or the error [Call.Wait] gives (an error reply, a
// timeout, or the end of the connection, which fails every request then in
// flight). An error onReply returns is returned by the Send or Flush that
// called it.
func NewPipeline(c *Conn, window int, onReply func(req, reply *protocol.Frame, err error) error) *Pipeline {
	return &Pipeline{c: c, window: max(window, 1), onReply: onReply}
}

// Send sends f once fewer than the window are unanswered, handing the
// replies that came before it to the reply func. It returns an error if f
// could not be sent (as [Conn.Send]) or the reply func returned one; then
// f was not sent.
func (p *Pipeline) Send(ctx context.Context, f *protocol.Frame) error {
	for len(p.flight) >= p.window {
		if err := p.next(ctx); err != nil {
			return err
		}
	}
	call, err := p.c.Send(ctx, f)
	if err != nil {
		return err
	}
	p.flight = append(p.flight, inFlight{f, call})
	return nil
}

// Flush waits for the replies to every request in flight and hands them
// to the reply func, in order. It stops at the first error the reply func
// returns; a later Flush goes on from there.
func (p *Pipeline) Flush(ctx context.Context) error {
	for len(p.flight) > 0 {
		if err := p.next(ctx); err != nil {
			return err
		}
	}
	return nil
}

// InFlight returns how many requests are sent and not handed to the reply
// func yet.
func (p *Pipeline) InFlight() int { return len(p.flight) }

// next waits for the oldest request's reply and hands it on. If ctx ends
// first, the request stays in flight.
func (p *Pipeline) next(ctx context.Context) error {
	first := p.flight[0]
	reply, err := first.call.Wait(ctx)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return err
	}
	p.flight[0] = inFlight{}
	p.flight = p.flight[1:]
	return p.onReply(first.req, reply, err)
}
