package main

import (
	"context"
	"fmt"

	"github.com/conclave/conclave/protocol"
)

// WhisperCmd sends one direct message to one live session.
type WhisperCmd struct {
	serverFlag
	Target string `arg:"" help:"The session to whisper to, user/machine/session (see 'conclave who')."`
	Text   string `arg:"" help:"The message; - reads it from stdin (to its end)."`
}

// Run sends the whisper and prints `✓ whispered to <target>`.
func (c *WhisperCmd) Run(ctx context.Context, g *Globals) error {
	if _, err := protocol.ParseSessionPath(c.Target); err != nil {
		return err
	}
	body, err := g.messageText(c.Text)
	if err != nil {
		return err
	}
	f := &protocol.Frame{Type: protocol.TWhisper, Target: c.Target, Body: &body}
	if _, _, err := g.oneShot(ctx, c.Server, f, protocol.TAck); err != nil {
		return fmt.Errorf("whisper rejected: %w", err)
	}
	if g.JSON {
		return g.printJSON(struct {
			Target string `json:"target"`
		}{c.Target})
	}
	g.printf("✓ whispered to %s\n", c.Target)
	return nil
}
