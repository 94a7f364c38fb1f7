package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/conclave/conclave/timespec"

	"github.com/conclave/conclave/protocol"
)

// InviteCmd groups the invite verbs.
type InviteCmd struct {
	Create InviteCreateCmd `cmd:"" help:"Create an invite token for a channel you administer (for private channels: 'join CHANNEL --token T')."`
	List   InviteListCmd   `cmd:"" aliases:"ls" help:"List a channel's outstanding invites, tokens in full."`
	Revoke InviteRevokeCmd `cmd:"" help:"Revoke an invite token."`
}

// maxInviteLifetime is the longest --expires-in the server accepts: 10
// years, in seconds.
const maxInviteLifetime = 10 * 365 * 24 * 60 * 60

// InviteCreateCmd creates an invite token.
type InviteCreateCmd struct {
	serverFlag
	channelFlag
	Uses      *int64 `name:"uses" placeholder:"N" help:"How many joins the token admits (default: unlimited)."`
	ExpiresIn string `name:"expires-in" placeholder:"DURATION" help:"Lifetime, a duration: 30s, 10m, 24h, 7d, 1d12h, 2w; at most 10 years (default: never expires)."`
}

// Run prints `invite token: <token>`, then `uses: <n|unlimited>` and
// `expires: <RFC 3339|never>`; with --json one object
// {"channel", "token", "uses", "expires_at"}, null meaning unlimited and
// never.
func (c *InviteCreateCmd) Run(ctx context.Context, g *Globals) error {
	if err := checkName("channel name", c.Channel); err != nil {
		return err
	}
	f := &protocol.Frame{Type: protocol.TInviteCreate, Channel: c.Channel}
	if c.Uses != nil {
		if *c.Uses < 1 {
			return fmt.Errorf("invalid --uses %d: must be at least 1 (leave it out for unlimited)", *c.Uses)
		}
		f.Uses = c.Uses
	}
	if c.ExpiresIn != "" {
		secs, err := parseLifetime(c.ExpiresIn)
		if err != nil {
			return fmt.Errorf("invalid --expires-in %q: %w", c.ExpiresIn, err)
		}
		f.ExpiresInSecs = &secs
	}
	r, _, err := g.oneShot(ctx, c.Server, f, protocol.TInviteToken)
	if err != nil {
		return err
	}
	if r.Token == "" {
		return errors.New("unexpected response from the server: an invite without a token")
	}
	inv := protocol.InviteInfo{Channel: c.Channel, Token: r.Token, Uses: r.Uses, ExpiresAt: r.ExpiresAt}
	if r.Channel != "" {
		inv.Channel = r.Channel
	}
	if g.JSON {
		return g.printJSON(inv)
	}
	g.printf("invite token: %s\nuses: %s\nexpires: %s\n", inv.Token, usesText(inv.Uses), expiresText(inv.ExpiresAt))
	return nil
}

// InviteListCmd lists a channel's invites.
type InviteListCmd struct {
	serverFlag
	channelFlag
}

// Run prints `<token>\tuses: <n|unlimited>\texpires: <RFC 3339|never>` per
// invite; with --json an array of {"channel", "token", "uses",
// "expires_at"}. Expired invites are listed until revoked.
func (c *InviteListCmd) Run(ctx context.Context, g *Globals) error {
	if err := checkName("channel name", c.Channel); err != nil {
		return err
	}
	r, _, err := g.oneShot(ctx, c.Server, &protocol.Frame{Type: protocol.TInviteList, Channel: c.Channel}, protocol.TInvites)
	if err != nil {
		return err
	}
	if g.JSON {
		out := r.Invites
		if out == nil {
			out = []protocol.InviteInfo{}
		}
		return g.printJSON(out)
	}
	for _, inv := range r.Invites {
		g.printf("%s\tuses: %s\texpires: %s\n", inv.Token, usesText(inv.Uses), expiresText(inv.ExpiresAt))
	}
	return nil
}

// InviteRevokeCmd revokes an invite token.
type InviteRevokeCmd struct {
	serverFlag
	Token     string `arg:"" optional:"" help:"The token to revoke. One that starts with '-' goes after '--' (invite revoke -- -xbE5…) or in --token."`
	TokenFlag string `name:"token" placeholder:"TOKEN" help:"The token to revoke, instead of the argument."`
}

// Run prints `✓ invite revoked`. The server gives that answer whether or
// not the token exists and whether or not you may revoke it, so that it
// reveals nothing; 'invite list' shows what is left.
func (c *InviteRevokeCmd) Run(ctx context.Context, g *Globals) error {
	token := c.Token
	switch {
	case c.Token != "" && c.TokenFlag != "":
		return errors.New("give the token once: as the argument or in --token")
	case c.Token == "":
		token = c.TokenFlag
	}
	if len(token) == 0 || len(token) > 128 {
		return errors.New("invalid token: must be 1 to 128 bytes")
	}
	if _, _, err := g.oneShot(ctx, c.Server, &protocol.Frame{Type: protocol.TInviteRevoke, Token: token}, protocol.TAck); err != nil {
		return err
	}
	return g.done(struct {
		Token string `json:"token"`
	}{token}, "invite revoked")
}

func usesText(uses *int64) string {
	if uses == nil {
		return "unlimited"
	}
	return strconv.FormatInt(*uses, 10)
}

func expiresText(at *string) string {
	if at == nil || *at == "" {
		return "never"
	}
	return *at
}

// parseLifetime parses an invite lifetime, a duration (timespec), into
// whole seconds: at least one second and at most 10 years.
func parseLifetime(s string) (int64, error) {
	d, err := timespec.ParseDuration(s)
	switch {
	case err != nil:
		return 0, err
	case d < time.Second:
		return 0, errors.New("an invite must live at least 1s")
	case d > maxInviteLifetime*time.Second:
		return 0, errors.New("an invite can live at most 10 years (3650d)")
	}
	return int64(d / time.Second), nil
}
