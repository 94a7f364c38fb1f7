package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/conclave/conclave/control"
	"github.com/conclave/conclave/identity"
	"github.com/conclave/conclave/protocol"
)

// call sends f to l's server, waiting for the link as [link.await] does,
// and returns the reply if it has type want. Every failure becomes a text
// the agent can act on: a server refusal as "code: message", a lost link
// as a request to retry.
func (b *Bridge) call(ctx context.Context, l *link, f *protocol.Frame, want string) (*protocol.Frame, error) {
	conn, err := l.await(ctx)
	if err != nil {
		return nil, err
	}
	r, err := conn.Request(ctx, f)
	if err != nil {
		return nil, l.callErr(err)
	}
	if r.Type != want {
		return nil, fmt.Errorf("unexpected reply from %s: %s (wanted %s)", code(l.url), r.Type, want)
	}
	return r, nil
}

func (l *link) callErr(err error) error {
	var pe *protocol.Error
	var te *control.TimeoutError
	switch {
	case errors.As(err, &pe):
		return errors.New(pe.Error())
	case errors.Is(err, control.ErrNoResponse), errors.Is(err, control.ErrClosed):
		return fmt.Errorf("the connection to %s was lost before it answered (%v); the bridge is reconnecting — "+
			"retry in a moment (the request may or may not have taken effect)", code(l.url), err)
	case errors.As(err, &te):
		return fmt.Errorf("%s did not answer in time (%v); retry in a moment", code(l.url), err)
	case errors.Is(err, context.Canceled):
		return errors.New("cancelled")
	}
	return err
}

// channelName returns a valid channel name argument.
func channelName(a args, key string) (string, error) {
	ch, err := a.need(key)
	if err != nil {
		return "", err
	}
	if err := protocol.CheckName(ch); err != nil {
		return "", fmt.Errorf("invalid channel name %q: %v", ch, err)
	}
	return ch, nil
}

// target resolves the server argument of a call.
func (b *Bridge) target(a args) (*link, error) {
	s, err := a.str("server")
	if err != nil {
		return nil, err
	}
	return b.resolve(s)
}

func (b *Bridge) joinChannel(ctx context.Context, a args) (string, error) {
	ch, err := channelName(a, "channel")
	if err != nil {
		return "", err
	}
	token, err := a.str("token")
	if err != nil {
		return "", err
	}
	var level *identity.Level
	if p, err := a.str("perm"); err != nil {
		return "", err
	} else if p != "" {
		lv, err := identity.ParseLevel(p)
		if err != nil {
			return "", err
		}
		level = &lv
	}
	l, err := b.target(a)
	if err != nil {
		return "", err
	}
	if _, err := b.call(ctx, l, &protocol.Frame{Type: protocol.TJoin, Channel: ch, Token: token}, protocol.TJoined); err != nil {
		return "", err
	}
	// Only a successful join changes the level (SPEC.md §6).
	if level != nil {
		b.policy.set(l.url, ch, false, *level)
	}
	l.sess.Add(ch)
	b.channelsSeen(l.url, []string{ch}, false)
	b.refreshTools()
	lv := b.policy.channel(l.url, ch)
	return fmt.Sprintf("joined %s (permission level %s%s)", ch, lv, levelHint(lv)), nil
}

func levelHint(l identity.Level) string {
	switch l {
	case identity.Mute:
		return ": its messages are not delivered"
	case identity.Notify:
		return ": messages arrive read-only; set_perm raises it"
	}
	return ": you may reply with send_channel"
}

func (b *Bridge) leaveChannel(ctx context.Context, a args) (string, error) {
	ch, err := channelName(a, "channel")
	if err != nil {
		return "", err
	}
	l, err := b.target(a)
	if err != nil {
		return "", err
	}
	// Forget it at once: even if the leave fails, the next connection
	// will not re-join it.
	l.sess.Forget(ch)
	b.refreshTools()
	if _, err := b.call(ctx, l, &protocol.Frame{Type: protocol.TLeave, Channel: ch}, protocol.TAck); err != nil {
		return "", err
	}
	return "left " + ch, nil
}

func (b *Bridge) listChannels(ctx context.Context, a args) (string, error) {
	l, err := b.target(a)
	if err != nil {
		return "", err
	}
	r, err := b.call(ctx, l, &protocol.Frame{Type: protocol.TListChannels}, protocol.TChannelList)
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(r.Channels))
	for _, c := range r.Channels {
		names = append(names, c.Name)
	}
	b.channelsSeen(l.url, names, true)
	if len(r.Channels) == 0 {
		return "no channels visible", nil
	}
	joined := make(map[string]bool)
	for _, c := range l.sess.Channels() {
		joined[c.Name] = c.Joined
	}
	var sb strings.Builder
	for _, c := range r.Channels {
		fmt.Fprintf(&sb, "%s (%s", c.Name, c.Visibility)
		if c.Member {
			sb.WriteString(", member")
		}
		if joined[c.Name] {
			sb.WriteString(", joined")
		}
		sb.WriteString(")\n")
	}
	return strings.TrimSuffix(sb.String(), "\n"), nil
}

func (b *Bridge) who(ctx context.Context, a args) (string, error) {
	ch, err := a.str("channel")
	if err != nil {
		return "", err
	}
	l, err := b.target(a)
	if err != nil {
		return "", err
	}
	r, err := b.call(ctx, l, &protocol.Frame{Type: protocol.TWho, Channel: ch}, protocol.TPresence)
	if err != nil {
		return "", err
	}
	scope := "server-wide"
	if ch != "" {
		scope = "#" + ch
	}
	if len(r.Sessions) == 0 {
		return scope + ": nobody online", nil
	}
	return scope + ": " + strings.Join(r.Sessions, ", "), nil
}

func (b *Bridge) setPerm(_ context.Context, a args) (string, error) {
	ls, err := a.str("level")
	if err != nil {
		return "", err
	}
	if ls == "" {
		return "", errors.New("`level` is required: one of mute, notify, converse, act")
	}
	level, err := identity.ParseLevel(ls)
	if err != nil {
		return "", err
	}
	ch, err := a.str("channel")
	if err != nil {
		return "", err
	}
	whisper, err := a.boolean("whisper")
	if err != nil {
		return "", err
	}
	var what string
	switch {
	case whisper || ch != "":
		l, err := b.target(a)
		if err != nil {
			return "", err
		}
		if whisper {
			b.policy.set(l.url, "", true, level)
			what = "whispers on " + code(l.url)
		} else {
			if err := protocol.CheckName(ch); err != nil {
				return "", fmt.Errorf("invalid channel name %q: %v", ch, err)
			}
			b.policy.set(l.url, ch, false, level)
			what = code(ch) + " on " + code(l.url)
		}
	default:
		b.policy.setDefault(level)
		what = "the default"
	}
	b.refreshTools()
	return fmt.Sprintf("permission updated: %s -> %s (for this session only; `conclave perm set` saves it)", what, level), nil
}

func (b *Bridge) sendChannel(ctx context.Context, a args) (string, error) {
	ch, err1 := a.str("channel")
	text, err2 := a.str("text")
	if err := errors.Join(err1, err2); err != nil {
		return "", err
	}
	if ch == "" || text == "" {
		return "", errors.New("`channel` and `text` are required")
	}
	if err := protocol.CheckName(ch); err != nil {
		return "", fmt.Errorf("invalid channel name %q: %v", ch, err)
	}
	l, err := b.target(a)
	if err != nil {
		return "", err
	}
	if lv := b.policy.channel(l.url, ch); !lv.CanEmit() {
		return "", fmt.Errorf("permission denied: %s on %s is below `converse` (it is %s); nothing was sent", code(ch), code(l.url), lv)
	}
	scope := "channel " + ch
	if err := b.budget.take(l.url, scope); err != nil {
		return "", err
	}
	if _, err := b.call(ctx, l, &protocol.Frame{Type: protocol.TChannelMsg, Channel: ch, Body: &text}, protocol.TAck); err != nil {
		b.budget.refund(l.url, scope)
		return "", err
	}
	return "sent to " + ch, nil
}

func (b *Bridge) whisper(ctx context.Context, a args) (string, error) {
	target, err1 := a.str("target")
	text, err2 := a.str("text")
	if err := errors.Join(err1, err2); err != nil {
		return "", err
	}
	if target == "" || text == "" {
		return "", errors.New("`target` and `text` are required")
	}
	if _, err := protocol.ParseSessionPath(target); err != nil {
		return "", errors.New("`target` must be a `user/machine/session` path")
	}
	l, err := b.target(a)
	if err != nil {
		return "", err
	}
	if lv := b.policy.whisper(l.url); !lv.CanEmit() {
		return "", fmt.Errorf("permission denied: whispers on %s are below `converse` (they are %s); nothing was sent", code(l.url), lv)
	}
	scope := "whispers to " + target
	if err := b.budget.take(l.url, scope); err != nil {
		return "", err
	}
	if _, err := b.call(ctx, l, &protocol.Frame{Type: protocol.TWhisper, Target: target, Body: &text}, protocol.TAck); err != nil {
		b.budget.refund(l.url, scope)
		return "", err
	}
	return "whisper sent", nil
}

// channelsSeen hands names to Options.ChannelsSeen, if set.
func (b *Bridge) channelsSeen(server string, names []string, all bool) {
	if f := b.opts.ChannelsSeen; f != nil {
		f(server, names, all)
	}
}
