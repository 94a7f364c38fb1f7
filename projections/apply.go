package projections

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/conclave/conclave/protocol"
)

// ErrInvalidEvent is wrapped by every error of [State.Apply] and
// [UnmarshalSnapshot]: an unknown event type, a body that does not decode,
// or a change that contradicts the state.
var ErrInvalidEvent = errors.New("projections: invalid event")

// Apply folds one event (validated by [State.Decide], or read back from
// the log) into the state and records seq as the last applied. An event
// that cannot apply returns an error wrapping [ErrInvalidEvent] and leaves
// the state unchanged; replay stops there. Apply never reads the clock.
func (s *State) Apply(seq uint64, ev Event) error {
	if err := s.apply(seq, ev); err != nil {
		return fmt.Errorf("%w: seq %d (%.40q): %v", ErrInvalidEvent, seq, ev.Type, err)
	}
	s.lastSeq = seq
	return nil
}

// decode unmarshals an event body strictly: one JSON object, no unknown
// fields, nothing after it.
func decode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad body: %v", err)
	}
	if dec.More() {
		return errors.New("bad body: trailing data")
	}
	return nil
}

func checkName(what, name string) error {
	if err := protocol.CheckName(name); err != nil {
		return fmt.Errorf("invalid %s %q: %v", what, name, err)
	}
	return nil
}

func checkVisibility(v protocol.Visibility) error {
	_, err := protocol.ParseVisibility(string(v))
	return err
}

// apply checks every precondition before it changes anything, so a failed
// event leaves the state as it was. Each event type has its own method,
// as each command has in the decider.
func (s *State) apply(seq uint64, ev Event) error {
	a := applier{s: s, seq: seq, ev: ev}
	switch ev.Type {
	case EvUserRegistered:
		return applyAs(ev.Data, a.userRegistered)
	case EvMachineAdded:
		return applyAs(ev.Data, a.machineAdded)
	case EvMachineRemoved:
		return applyAs(ev.Data, a.machineRemoved)
	case EvApproverAdded, EvApproverRemoved:
		return applyAs(ev.Data, a.approverChanged)
	case EvUserRemoved:
		return applyAs(ev.Data, a.userRemoved)
	case EvChannelCreated:
		return applyAs(ev.Data, a.channelCreated)
	case EvChannelDeleted:
		return applyAs(ev.Data, a.channelDeleted)
	case EvChannelRenamed:
		return applyAs(ev.Data, a.channelRenamed)
	case EvVisibilityChanged:
		return applyAs(ev.Data, a.visibilityChanged)
	case EvACLAdded:
		return applyAs(ev.Data, a.aclAdded)
	case EvACLRemoved:
		return applyAs(ev.Data, a.aclRemoved)
	case EvBanned:
		return applyAs(ev.Data, a.banned)
	case EvUnbanned:
		return applyAs(ev.Data, a.unbanned)
	case EvInviteCreated:
		return applyAs(ev.Data, a.inviteCreated)
	case EvInviteRedeemed:
		return applyAs(ev.Data, a.inviteRedeemed)
	case EvInviteRevoked, EvInviteExpired:
		return applyAs(ev.Data, a.inviteEnded)
	case EvKicked:
		return applyAs(ev.Data, a.kicked)
	}
	return errors.New("unknown event type")
}

// applyAs decodes an event body into its type and applies it.
func applyAs[D any](data []byte, apply func(D) error) error {
	var d D
	if err := decode(data, &d); err != nil {
		return err
	}
	return apply(d)
}

// applier applies one event, numbered seq, to s.
type applier struct {
	s   *State
	seq uint64
	ev  Event
}

func (a applier) userRegistered(d RegisterData) error {
	s := a.s
	if err := checkName("user name", d.User); err != nil {
		return err
	}
	if err := checkName("machine name", d.Machine); err != nil {
		return err
	}
	if s.UserExists(d.User) {
		return fmt.Errorf("user %q already exists", d.User)
	}
	if err := s.checkNewKey(d.Pubkey); err != nil {
		return err
	}
	s.users[d.User] = &userState{createdAtMs: a.ev.TimeMs, machines: map[string]*machineState{}}
	s.userSkel.add(d.User)
	s.addMachine(d.User, d.Machine, d.Pubkey, a.ev.TimeMs)
	return nil
}

func (a applier) machineAdded(d MachineData) error {
	s := a.s
	u, ok := s.users[d.User]
	if !ok {
		return fmt.Errorf("no user %q", d.User)
	}
	if err := checkName("machine name", d.Machine); err != nil {
		return err
	}
	if _, ok := u.machines[d.Machine]; ok {
		return fmt.Errorf("machine %q of user %q already exists", d.Machine, d.User)
	}
	if err := s.checkNewKey(d.Pubkey); err != nil {
		return err
	}
	s.addMachine(d.User, d.Machine, d.Pubkey, a.ev.TimeMs)
	return nil
}

func (a applier) machineRemoved(d MachineData) error {
	u, m, err := a.s.machine(d.User, d.Machine)
	if err != nil {
		return err
	}
	delete(a.s.keys, string(m.pubkey))
	delete(u.machines, d.Machine)
	return nil
}

// approverChanged applies EvApproverAdded and EvApproverRemoved.
func (a applier) approverChanged(d MachineData) error {
	u, m, err := a.s.machine(d.User, d.Machine)
	if err != nil {
		return err
	}
	if len(d.Pubkey) != 0 {
		return errors.New("approver event carries a key")
	}
	m.approver = a.ev.Type == EvApproverAdded
	if m.approver {
		u.approversSet = true
	}
	return nil
}

func (a applier) userRemoved(d UserData) error {
	s := a.s
	u, ok := s.users[d.User]
	if !ok {
		return fmt.Errorf("no user %q", d.User)
	}
	for name, ch := range s.channels {
		if ch.createdBy == d.User {
			s.deleteChannel(name)
		} else {
			delete(ch.acl, d.User) // bans naming the user stay
		}
	}
	for _, m := range u.machines {
		delete(s.keys, string(m.pubkey))
	}
	delete(s.users, d.User)
	s.userSkel.remove(d.User)
	return nil
}

func (a applier) channelCreated(d ChannelData) error {
	s := a.s
	if err := checkName("channel name", d.Channel); err != nil {
		return err
	}
	if d.Visibility == "" {
		d.Visibility = protocol.Public
	}
	if err := checkVisibility(d.Visibility); err != nil {
		return err
	}
	if _, ok := s.channels[d.Channel]; ok {
		return fmt.Errorf("channel %q already exists", d.Channel)
	}
	if !s.UserExists(d.CreatedBy) {
		return fmt.Errorf("creator %q of channel %q is not a user", d.CreatedBy, d.Channel)
	}
	s.chanSkel.add(d.Channel)
	s.channels[d.Channel] = &channelState{
		id:          a.seq,
		visibility:  d.Visibility,
		createdBy:   d.CreatedBy,
		createdAtMs: a.ev.TimeMs,
		acl:         map[string]struct{}{d.CreatedBy: {}},
		bans:        map[string]struct{}{},
	}
	return nil
}

func (a applier) channelDeleted(d ChannelData) error {
	if _, err := a.s.channel(d.Channel); err != nil {
		return err
	}
	a.s.deleteChannel(d.Channel)
	return nil
}

func (a applier) channelRenamed(d RenameData) error {
	s := a.s
	ch, err := s.channel(d.Channel)
	if err != nil {
		return err
	}
	if err := checkName("channel name", d.NewName); err != nil {
		return err
	}
	if _, ok := s.channels[d.NewName]; ok {
		return fmt.Errorf("channel %q already exists", d.NewName)
	}
	delete(s.channels, d.Channel)
	s.chanSkel.remove(d.Channel)
	s.channels[d.NewName] = ch
	s.chanSkel.add(d.NewName)
	for _, inv := range s.invites {
		if inv.channel == d.Channel {
			inv.channel = d.NewName
		}
	}
	return nil
}

func (a applier) visibilityChanged(d ChannelData) error {
	ch, err := a.s.channel(d.Channel)
	if err != nil {
		return err
	}
	if err := checkVisibility(d.Visibility); err != nil {
		return err
	}
	ch.visibility = d.Visibility
	return nil
}

func (a applier) aclAdded(d MemberData) error {
	ch, err := a.s.member(d)
	if err != nil {
		return err
	}
	if !a.s.UserExists(d.User) {
		return fmt.Errorf("no user %q", d.User)
	}
	ch.acl[d.User] = struct{}{}
	delete(ch.bans, d.User)
	return nil
}

func (a applier) aclRemoved(d MemberData) error {
	ch, err := a.s.member(d)
	if err != nil {
		return err
	}
	delete(ch.acl, d.User)
	return nil
}

func (a applier) banned(d MemberData) error {
	ch, err := a.s.member(d)
	if err != nil {
		return err
	}
	delete(ch.acl, d.User)
	ch.bans[d.User] = struct{}{}
	return nil
}

func (a applier) unbanned(d MemberData) error {
	ch, err := a.s.member(d)
	if err != nil {
		return err
	}
	delete(ch.bans, d.User)
	return nil
}

func (a applier) inviteCreated(d InviteData) error {
	s := a.s
	if _, err := s.channel(d.Channel); err != nil {
		return err
	}
	if d.Token == "" {
		return errors.New("empty invite token")
	}
	if _, ok := s.invites[d.Token]; ok {
		return errors.New("invite token already exists")
	}
	if d.Uses != nil && *d.Uses <= 0 {
		return fmt.Errorf("invite uses %d, want at least 1", *d.Uses)
	}
	s.invites[d.Token] = &inviteState{channel: d.Channel, uses: d.Uses,
		expiresAtMs: d.ExpiresAtMs, createdBy: actorUser(a.ev.Actor)}
	return nil
}

func (a applier) inviteRedeemed(d RedeemData) error {
	inv, err := a.s.invite(d.Channel, d.Token)
	if err != nil {
		return err
	}
	if inv.uses != nil {
		if *inv.uses <= 0 {
			return errors.New("invite is spent")
		}
		*inv.uses--
		if *inv.uses == 0 {
			delete(a.s.invites, d.Token)
		}
	}
	return nil
}

// inviteEnded applies EvInviteRevoked and EvInviteExpired.
func (a applier) inviteEnded(d TokenData) error {
	if _, err := a.s.invite(d.Channel, d.Token); err != nil {
		return err
	}
	delete(a.s.invites, d.Token)
	return nil
}

func (a applier) kicked(d KickData) error {
	_, err := a.s.channel(d.Channel)
	return err
}

func (s *State) checkNewKey(pub []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if o, ok := s.keys[string(pub)]; ok {
		return fmt.Errorf("key already enrolled for %s/%s", o.user, o.machine)
	}
	return nil
}

func (s *State) addMachine(user, name string, pub []byte, atMs int64) {
	pub = bytes.Clone(pub)
	s.users[user].machines[name] = &machineState{pubkey: pub, addedAtMs: atMs}
	s.keys[string(pub)] = keyOwner{user: user, machine: name}
}

// machine returns a user's machine, or an error naming what is missing.
func (s *State) machine(user, name string) (*userState, *machineState, error) {
	u, ok := s.users[user]
	if !ok {
		return nil, nil, fmt.Errorf("no user %q", user)
	}
	m, ok := u.machines[name]
	if !ok {
		return nil, nil, fmt.Errorf("no machine %q of user %q", name, user)
	}
	return u, m, nil
}

// member checks an ACL or ban event's channel and user name.
func (s *State) member(d MemberData) (*channelState, error) {
	ch, err := s.channel(d.Channel)
	if err != nil {
		return nil, err
	}
	if err := checkName("user name", d.User); err != nil {
		return nil, err
	}
	return ch, nil
}

func (s *State) channel(name string) (*channelState, error) {
	ch, ok := s.channels[name]
	if !ok {
		return nil, fmt.Errorf("no channel %q", name)
	}
	return ch, nil
}

// invite never names the token in its error: errors reach logs.
func (s *State) invite(channel, token string) (*inviteState, error) {
	inv, ok := s.invites[token]
	if !ok {
		return nil, errors.New("no such invite")
	}
	if inv.channel != channel {
		return nil, fmt.Errorf("invite is for another channel than %q", channel)
	}
	return inv, nil
}

// deleteChannel drops a channel with its ACL, bans and invites.
func (s *State) deleteChannel(name string) {
	delete(s.channels, name)
	s.chanSkel.remove(name)
	for tok, inv := range s.invites {
		if inv.channel == name {
			delete(s.invites, tok)
		}
	}
}
