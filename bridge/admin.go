package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/conclave/conclave/protocol"
)

// adminTarget resolves the server of an admin tool and refuses locally,
// sending nothing, unless that server itself said admin:true: one server's
// admin role never authorizes anything on another.
func (b *Bridge) adminTarget(a args) (*link, error) {
	l, err := b.target(a)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	admin := l.admin
	l.mu.Unlock()
	if !admin {
		return nil, fmt.Errorf("not an admin on %s (admin tools need the server admin role; channel creators use the CLI)", code(l.url))
	}
	return l, nil
}

// adminCall runs one admin request whose reply is an ack and returns the
// ack's detail.
func (b *Bridge) adminCall(ctx context.Context, a args, f *protocol.Frame) (string, error) {
	l, err := b.adminTarget(a)
	if err != nil {
		return "", err
	}
	r, err := b.call(ctx, l, f, protocol.TAck)
	if err != nil {
		return "", err
	}
	return r.Detail, nil
}

// need2 returns two required string arguments, with one error naming
// both.
func need2(a args, k1, k2 string) (string, string, error) {
	v1, err1 := a.str(k1)
	v2, err2 := a.str(k2)
	if err := errors.Join(err1, err2); err != nil {
		return "", "", err
	}
	if v1 == "" || v2 == "" {
		return "", "", fmt.Errorf("`%s` and `%s` are required", k1, k2)
	}
	return v1, v2, nil
}

func (b *Bridge) createChannel(ctx context.Context, a args) (string, error) {
	name, err := channelName(a, "name")
	if err != nil {
		return "", err
	}
	vis, err := a.str("visibility")
	if err != nil {
		return "", err
	}
	if _, err := protocol.ParseVisibility(vis); err != nil {
		vis = string(protocol.Public)
	}
	d, err := b.adminCall(ctx, a, &protocol.Frame{Type: protocol.TCreateChannel, Channel: name, Visibility: vis})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("created %s channel %s (join_channel joins it)", vis, orDefault(d, name)), nil
}

func (b *Bridge) deleteChannel(ctx context.Context, a args) (string, error) {
	name, err := channelName(a, "name")
	if err != nil {
		return "", err
	}
	d, err := b.adminCall(ctx, a, &protocol.Frame{Type: protocol.TDeleteChannel, Channel: name})
	if err != nil {
		return "", err
	}
	return "deleted channel " + orDefault(d, name), nil
}

func (b *Bridge) setVisibility(ctx context.Context, a args) (string, error) {
	name, _ := a.str("name")
	vis, _ := a.str("visibility")
	if _, err := protocol.ParseVisibility(vis); name == "" || err != nil {
		return "", errors.New("`name` and a valid `visibility` (public, unlisted or private) are required")
	}
	d, err := b.adminCall(ctx, a, &protocol.Frame{Type: protocol.TSetVisibility, Channel: name, Visibility: vis})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s is now %s", orDefault(d, name), vis), nil
}

// memberCall runs an admin request on a channel and one of its members,
// the required arguments "channel" and key ("user", or "target" for a
// session or user to kick), and words the ack as done, a format of the
// member and the channel.
func (b *Bridge) memberCall(ctx context.Context, a args, typ, key, done string) (string, error) {
	ch, who, err := need2(a, "channel", key)
	if err != nil {
		return "", err
	}
	f := &protocol.Frame{Type: typ, Channel: ch, User: who}
	if key == "target" {
		f.User, f.Target = "", who
	}
	d, err := b.adminCall(ctx, a, f)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(done, orDefault(d, who), ch), nil
}

func (b *Bridge) aclAdd(ctx context.Context, a args) (string, error) {
	return b.memberCall(ctx, a, protocol.TACLAdd, "user", "added %s to the access list of %s")
}

func (b *Bridge) aclRemove(ctx context.Context, a args) (string, error) {
	return b.memberCall(ctx, a, protocol.TACLRemove, "user", "removed %s from the access list of %s")
}

func (b *Bridge) inviteCreate(ctx context.Context, a args) (string, error) {
	ch, err := a.need("channel")
	if err != nil {
		return "", err
	}
	uses, err1 := a.integer("uses")
	exp, err2 := a.integer("expires_in_secs")
	if err := errors.Join(err1, err2); err != nil {
		return "", err
	}
	l, err := b.adminTarget(a)
	if err != nil {
		return "", err
	}
	r, err := b.call(ctx, l, &protocol.Frame{Type: protocol.TInviteCreate, Channel: ch, Uses: uses, ExpiresInSecs: exp}, protocol.TInviteToken)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("invite token: %s (uses: %s, expires: %s)", r.Token, usesText(r.Uses), expiryText(r.ExpiresAt)), nil
}

func (b *Bridge) inviteRevoke(ctx context.Context, a args) (string, error) {
	token, err := a.need("token")
	if err != nil {
		return "", err
	}
	d, err := b.adminCall(ctx, a, &protocol.Frame{Type: protocol.TInviteRevoke, Token: token})
	if err != nil {
		return "", err
	}
	return orDefault(d, "invite revoked"), nil
}

func (b *Bridge) kick(ctx context.Context, a args) (string, error) {
	return b.memberCall(ctx, a, protocol.TKick, "target", "kicked %s from %s")
}

func (b *Bridge) ban(ctx context.Context, a args) (string, error) {
	return b.memberCall(ctx, a, protocol.TBan, "user", "banned %s from %s")
}

func (b *Bridge) unban(ctx context.Context, a args) (string, error) {
	return b.memberCall(ctx, a, protocol.TUnban, "user", "unbanned %s from %s")
}

func (b *Bridge) renameChannel(ctx context.Context, a args) (string, error) {
	name, newName, err := need2(a, "name", "new_name")
	if err != nil {
		return "", err
	}
	if err := protocol.CheckNewName(newName); err != nil {
		return "", fmt.Errorf("invalid channel name %q: %v", newName, err)
	}
	d, err := b.adminCall(ctx, a, &protocol.Frame{Type: protocol.TRenameChannel, Channel: name, NewName: newName})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("renamed %s to %s", name, orDefault(d, newName)), nil
}

// channelQuery runs an admin request of type typ on the required
// argument "channel" and returns its reply, of type reply.
func (b *Bridge) channelQuery(ctx context.Context, a args, typ, reply string) (*protocol.Frame, error) {
	ch, err := a.need("channel")
	if err != nil {
		return nil, err
	}
	l, err := b.adminTarget(a)
	if err != nil {
		return nil, err
	}
	return b.call(ctx, l, &protocol.Frame{Type: typ, Channel: ch}, reply)
}

func (b *Bridge) userListOf(ctx context.Context, a args, typ string) (string, error) {
	r, err := b.channelQuery(ctx, a, typ, protocol.TUserList)
	if err != nil {
		return "", err
	}
	if len(r.Users) == 0 {
		return "nobody", nil
	}
	return strings.Join(r.Users, ", "), nil
}

func (b *Bridge) aclList(ctx context.Context, a args) (string, error) {
	return b.userListOf(ctx, a, protocol.TACLList)
}

func (b *Bridge) banList(ctx context.Context, a args) (string, error) {
	return b.userListOf(ctx, a, protocol.TBanList)
}

func (b *Bridge) inviteList(ctx context.Context, a args) (string, error) {
	r, err := b.channelQuery(ctx, a, protocol.TInviteList, protocol.TInvites)
	if err != nil {
		return "", err
	}
	if len(r.Invites) == 0 {
		return "no outstanding invites", nil
	}
	var lines []string
	for _, inv := range r.Invites {
		lines = append(lines, fmt.Sprintf("%s (uses remaining: %s, expires: %s)", inv.Token, usesText(inv.Uses), expiryText(inv.ExpiresAt)))
	}
	return strings.Join(lines, "\n"), nil
}

func usesText(n *int64) string {
	if n == nil {
		return "unlimited"
	}
	return fmt.Sprint(*n)
}

func expiryText(ts *string) string {
	if ts == nil || *ts == "" {
		return "never"
	}
	return *ts
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
