package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/protocol"
)

// sendLines posts each non-empty line of the message (of stdin for -) as
// a message of its own, in order, as the lines come: a stream (`tail -f
// log | conclave send --lines -`) is posted while it runs. Up to --window
// posts wait for their acks at once, so a burst of lines costs a round
// trip per window, not per line.
//
// The server's rate limit may refuse a post while later ones are on their
// way. The command then takes back the replies in flight, posts the
// refused lines again, and from then on posts one line at a time, each
// retried until the limit lets it through, so that the order holds. If a
// line that was on its way got through before the refused one, every line
// is still posted but the command fails, naming the two. Any other refusal
// ends the command with the line's number; a line longer than the server's
// body cap is refused before it is sent, with nothing after it on its way.
func (c *SendCmd) sendLines(ctx context.Context, g *Globals) error {
	in := io.Reader(strings.NewReader(c.Text))
	if c.Text == "-" {
		if g.Stdin == nil {
			return errors.New("no stdin to read the messages from")
		}
		in = g.Stdin
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), stdinLimit)
	// Lines may come slowly: keep the session alive between them.
	s, err := c.join(ctx, g, connectOptions{keepalive: 20 * time.Second})
	if err != nil {
		return err
	}
	defer s.conn.Close()
	ls := &lineSender{s: s, channel: c.Channel}
	ls.p = control.NewPipeline(s.conn, c.Window, ls.onReply)
	n := 0
	for sc.Scan() {
		n++
		text := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" {
			continue
		}
		if err := ls.post(ctx, sentLine{n, text}); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d is longer than %d MiB", n+1, stdinLimit>>20)
		}
		return fmt.Errorf("read the messages from stdin: %w", err)
	}
	if err := ls.settle(ctx); err != nil {
		return err
	}
	if len(ls.seqs) == 0 {
		return errors.New("no lines to send: every line is empty")
	}
	if ls.early.n != 0 {
		return fmt.Errorf("all %d lines were posted, but line %d reached #%s before line %d: the server's rate limit refused line %d while line %d was on its way",
			len(ls.seqs), ls.early.n, c.Channel, ls.early.before, ls.early.before, ls.early.n)
	}
	if g.JSON {
		return g.printJSON(struct {
			Channel string   `json:"channel"`
			Seqs    []uint64 `json:"seqs"`
		}{c.Channel, ls.seqs})
	}
	if len(ls.seqs) == 1 {
		g.printf("✓ sent 1 message to %s\n", c.Channel)
	} else {
		g.printf("✓ sent %d messages to %s\n", len(ls.seqs), c.Channel)
	}
	return nil
}

// sentLine is one line to post: its number in the input and its text.
type sentLine struct {
	n    int
	text string
}

// lineSender posts lines through a pipeline, then, after the rate limit
// refused one, one at a time.
type lineSender struct {
	s       *session
	channel string
	p       *control.Pipeline
	serial  bool       // the rate limit refused a post: one at a time from now on
	flight  []sentLine // the lines in the pipeline, oldest first
	refused []sentLine // lines the rate limit refused while others were in flight
	seqs    []uint64   // the seq of each posted line, in the order posted
	early   struct{ n, before int }
}

func (ls *lineSender) frame(l sentLine) *protocol.Frame {
	return &protocol.Frame{Type: protocol.TChannelMsg, Channel: ls.channel, Body: &l.text}
}

// post posts l, through the pipeline until the rate limit first refuses a
// post.
func (ls *lineSender) post(ctx context.Context, l sentLine) error {
	if limit := ls.s.conn.MaxBody(); limit > 0 && len(l.text) > limit {
		// Refused here rather than by the server, so that no line after
		// it is on its way.
		if err := ls.settle(ctx); err != nil {
			return err
		}
		return fmt.Errorf("line %d is %d bytes, more than the server takes in a message (%d)", l.n, len(l.text), limit)
	}
	if ls.serial {
		return ls.postOne(ctx, l)
	}
	ls.flight = append(ls.flight, l)
	if err := ls.p.Send(ctx, ls.frame(l)); err != nil {
		return err
	}
	if len(ls.refused) > 0 {
		return ls.settle(ctx)
	}
	return nil
}

// onReply takes the reply to the oldest line in the pipeline.
func (ls *lineSender) onReply(_, reply *protocol.Frame, err error) error {
	l := ls.flight[0]
	ls.flight = ls.flight[1:]
	if rateLimited(err) {
		ls.refused = append(ls.refused, l)
		return nil
	}
	if err == nil {
		reply, err = expect(reply, protocol.TAck)
	}
	if err != nil {
		return fmt.Errorf("line %d: send rejected: %w", l.n, err)
	}
	if len(ls.refused) > 0 && ls.early.n == 0 {
		ls.early.n, ls.early.before = l.n, ls.refused[0].n
	}
	ls.seqs = append(ls.seqs, reply.Seq)
	return nil
}

// settle waits for every line in the pipeline; if the rate limit refused
// any, it posts them again one at a time and switches to posting so.
func (ls *lineSender) settle(ctx context.Context) error {
	if err := ls.p.Flush(ctx); err != nil {
		return err
	}
	if len(ls.refused) == 0 {
		return nil
	}
	ls.serial = true
	refused := ls.refused
	ls.refused = nil
	for _, l := range refused {
		if err := ls.postOne(ctx, l); err != nil {
			return err
		}
	}
	return nil
}

// postOne posts l and waits for its ack, waiting and posting again while
// the rate limit refuses it.
func (ls *lineSender) postOne(ctx context.Context, l sentLine) error {
	wait := 50 * time.Millisecond
	for {
		r, err := ls.s.request(ctx, ls.frame(l))
		if err == nil {
			r, err = expect(r, protocol.TAck)
		}
		if err == nil {
			ls.seqs = append(ls.seqs, r.Seq)
			return nil
		}
		if !rateLimited(err) {
			return fmt.Errorf("line %d: send rejected: %w", l.n, err)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func rateLimited(err error) bool {
	var pe *protocol.Error
	return errors.As(err, &pe) && pe.Code == protocol.CodeRateLimited
}
