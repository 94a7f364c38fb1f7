package projections

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"time"

	"github.com/conclave/conclave/protocol"
)

// Decide validates cmd for actor at time now against the state and returns
// the events it becomes, or a refusal. It never modifies s. A nil error
// with no events means the command is allowed and there is nothing to
// write (for example Join of a public channel, or InviteRevoke by a
// non-admin). Refusals that could reveal a private channel to a non-member
// are [protocol.NoSuchChannel].
//
// The returned events must be applied (in order) before the next command
// is decided.
func (s *State) Decide(actor Actor, cmd Command, now time.Time) ([]Event, *protocol.Error) {
	cmd = deref(cmd)
	if _, ok := cmd.(Register); !ok && actor.User != "" && !s.UserExists(actor.User) {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "not authorized: user %q is not registered", actor.User)
	}
	d := decider{s: s, actor: actor, now: now}
	switch c := cmd.(type) {
	case Register:
		return d.register(c)
	case MachineAdd:
		return d.machineAdd(c)
	case MachineRemove:
		return d.machineRemove(c)
	case UserRemove:
		return d.userRemove(c)
	case CreateChannel:
		return d.createChannel(c)
	case DeleteChannel:
		return d.deleteChannel(c)
	case RenameChannel:
		return d.renameChannel(c)
	case SetVisibility:
		return d.setVisibility(c)
	case ACLAdd:
		return d.aclAdd(c)
	case ACLRemove:
		return d.aclRemove(c)
	case InviteCreate:
		return d.inviteCreate(c)
	case InviteRevoke:
		return d.inviteRevoke(c)
	case Join:
		return d.join(c)
	case Ban:
		return d.ban(c)
	case Unban:
		return d.unban(c)
	case Kick:
		return d.kick(c)
	case ApproverAdd:
		return d.approverAdd(c)
	case ApproverRemove:
		return d.approverRemove(c)
	}
	return nil, protocol.Errorf(protocol.CodeInternal, "unsupported command")
}

// deref accepts pointers to commands as well as values.
func deref(cmd Command) Command {
	switch c := cmd.(type) {
	case *Register:
		if c != nil {
			return *c
		}
	case *MachineAdd:
		if c != nil {
			return *c
		}
	case *MachineRemove:
		if c != nil {
			return *c
		}
	case *UserRemove:
		if c != nil {
			return *c
		}
	case *CreateChannel:
		if c != nil {
			return *c
		}
	case *DeleteChannel:
		if c != nil {
			return *c
		}
	case *RenameChannel:
		if c != nil {
			return *c
		}
	case *SetVisibility:
		if c != nil {
			return *c
		}
	case *ACLAdd:
		if c != nil {
			return *c
		}
	case *ACLRemove:
		if c != nil {
			return *c
		}
	case *InviteCreate:
		if c != nil {
			return *c
		}
	case *InviteRevoke:
		if c != nil {
			return *c
		}
	case *Join:
		if c != nil {
			return *c
		}
	case *Ban:
		if c != nil {
			return *c
		}
	case *Unban:
		if c != nil {
			return *c
		}
	case *Kick:
		if c != nil {
			return *c
		}
	case *ApproverAdd:
		if c != nil {
			return *c
		}
	case *ApproverRemove:
		if c != nil {
			return *c
		}
	}
	return cmd
}

type decider struct {
	s     *State
	actor Actor
	now   time.Time
}

func (d decider) event(typ string, data any) Event {
	b, err := json.Marshal(data)
	if err != nil {
		// The data structs hold only strings, byte slices and integers.
		panic("projections: marshal event data: " + err.Error())
	}
	actor := d.actor.Path
	if actor == "" {
		actor = "server"
	}
	return Event{Type: typ, Data: b, Actor: actor, TimeMs: d.now.UnixMilli()}
}

func (d decider) one(typ string, data any) ([]Event, *protocol.Error) {
	return []Event{d.event(typ, data)}, nil
}

func malformedName(what, name string, err error) *protocol.Error {
	return protocol.Errorf(protocol.CodeMalformed, "invalid %s %q: %v", what, name, err)
}

func (d decider) needUser() *protocol.Error {
	if d.actor.User == "" {
		return protocol.Errorf(protocol.CodeUnauthorized, "not authorized: a registered user is required")
	}
	return nil
}

func (d decider) checkKey(pub ed25519.PublicKey) *protocol.Error {
	if len(pub) != ed25519.PublicKeySize {
		return protocol.Errorf(protocol.CodeMalformed, "public key must be %d bytes, got %d", ed25519.PublicKeySize, len(pub))
	}
	if _, taken := d.s.keys[string(pub)]; taken {
		return protocol.Errorf(protocol.CodeConflict, "this key is already enrolled on this server")
	}
	return nil
}

func (d decider) register(c Register) ([]Event, *protocol.Error) {
	if err := d.s.CheckNewUser(c.User); err != nil {
		return nil, err
	}
	if err := newName("machine name", c.Machine); err != nil {
		return nil, err
	}
	if err := d.checkKey(c.Pubkey); err != nil {
		return nil, err
	}
	return d.one(EvUserRegistered, RegisterData{User: c.User, Machine: c.Machine, Pubkey: c.Pubkey})
}

func (d decider) machineAdd(c MachineAdd) ([]Event, *protocol.Error) {
	if err := d.needUser(); err != nil {
		return nil, err
	}
	if err := d.s.CheckNewMachine(d.actor.User, c.Machine); err != nil {
		return nil, err
	}
	if err := d.checkKey(c.Pubkey); err != nil {
		return nil, err
	}
	return d.one(EvMachineAdded, MachineData{User: d.actor.User, Machine: c.Machine, Pubkey: c.Pubkey})
}

func (d decider) machineRemove(c MachineRemove) ([]Event, *protocol.Error) {
	if err := d.needUser(); err != nil {
		return nil, err
	}
	if _, ok := d.s.users[d.actor.User].machines[c.Machine]; !ok {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no machine named %q", c.Machine)
	}
	return d.one(EvMachineRemoved, MachineData{User: d.actor.User, Machine: c.Machine})
}

func (d decider) userRemove(c UserRemove) ([]Event, *protocol.Error) {
	if !d.actor.ServerAdmin {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "not authorized: server admin role required")
	}
	if !d.s.UserExists(c.User) {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no user named %q", c.User)
	}
	return d.one(EvUserRemoved, UserData{User: c.User})
}

func (d decider) createChannel(c CreateChannel) ([]Event, *protocol.Error) {
	if err := d.needUser(); err != nil {
		return nil, err
	}
	if err := d.s.CheckNewChannel(c.Channel, ""); err != nil {
		return nil, err
	}
	vis := c.Visibility
	if vis == "" {
		vis = protocol.Public
	}
	if _, err := protocol.ParseVisibility(string(vis)); err != nil {
		return nil, protocol.Errorf(protocol.CodeMalformed, "%v", err)
	}
	return d.one(EvChannelCreated, ChannelData{Channel: c.Channel, Visibility: vis, CreatedBy: d.actor.User})
}

// administer is the gate of every channel-admin verb: a channel that does
// not exist and one the actor may not see are refused identically.
func (d decider) administer(name string) (*channelState, *protocol.Error) {
	ch, ok := d.s.channels[name]
	if !ok || !d.s.Visible(d.actor, name) {
		return nil, protocol.NoSuchChannel(name)
	}
	if !d.s.CanAdminister(d.actor, name) {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "not authorized: you do not administer channel %q", name)
	}
	return ch, nil
}

func (d decider) deleteChannel(c DeleteChannel) ([]Event, *protocol.Error) {
	if _, err := d.administer(c.Channel); err != nil {
		return nil, err
	}
	return d.one(EvChannelDeleted, ChannelData{Channel: c.Channel})
}

func (d decider) renameChannel(c RenameChannel) ([]Event, *protocol.Error) {
	if _, err := d.administer(c.Channel); err != nil {
		return nil, err
	}
	if err := d.s.CheckNewChannel(c.NewName, c.Channel); err != nil {
		return nil, err
	}
	return d.one(EvChannelRenamed, RenameData{Channel: c.Channel, NewName: c.NewName})
}

func (d decider) setVisibility(c SetVisibility) ([]Event, *protocol.Error) {
	ch, err := d.administer(c.Channel)
	if err != nil {
		return nil, err
	}
	if _, err := protocol.ParseVisibility(string(c.Visibility)); err != nil {
		return nil, protocol.Errorf(protocol.CodeMalformed, "%v", err)
	}
	if ch.visibility == c.Visibility {
		return nil, nil
	}
	return d.one(EvVisibilityChanged, ChannelData{Channel: c.Channel, Visibility: c.Visibility})
}

func (d decider) aclAdd(c ACLAdd) ([]Event, *protocol.Error) {
	ch, err := d.administer(c.Channel)
	if err != nil {
		return nil, err
	}
	if !d.s.UserExists(c.User) {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no user named %q", c.User)
	}
	_, member := ch.acl[c.User]
	_, banned := ch.bans[c.User]
	if member && !banned {
		return nil, nil
	}
	return d.one(EvACLAdded, MemberData{Channel: c.Channel, User: c.User})
}

func (d decider) aclRemove(c ACLRemove) ([]Event, *protocol.Error) {
	ch, err := d.administer(c.Channel)
	if err != nil {
		return nil, err
	}
	if _, member := ch.acl[c.User]; !member {
		return nil, nil
	}
	return d.one(EvACLRemoved, MemberData{Channel: c.Channel, User: c.User})
}

func (d decider) inviteCreate(c InviteCreate) ([]Event, *protocol.Error) {
	if _, err := d.administer(c.Channel); err != nil {
		return nil, err
	}
	if c.Token == "" {
		return nil, protocol.Errorf(protocol.CodeMalformed, "invite token must not be empty")
	}
	if c.Uses != nil && *c.Uses <= 0 {
		return nil, protocol.Errorf(protocol.CodeMalformed, "invite uses must be at least 1")
	}
	if _, ok := d.s.invites[c.Token]; ok {
		return nil, protocol.Errorf(protocol.CodeConflict, "an invite with this token already exists")
	}
	return d.one(EvInviteCreated, InviteData{Channel: c.Channel, Token: c.Token,
		Uses: clonePtr(c.Uses), ExpiresAtMs: clonePtr(c.ExpiresAtMs)})
}

// inviteRevoke never refuses: whether the token exists, and whether the
// actor may revoke it, must not be observable.
func (d decider) inviteRevoke(c InviteRevoke) ([]Event, *protocol.Error) {
	inv, ok := d.s.invites[c.Token]
	if !ok || !d.s.CanAdminister(d.actor, inv.channel) {
		return nil, nil
	}
	return d.one(EvInviteRevoked, TokenData{Channel: inv.channel, Token: c.Token})
}

func (d decider) join(c Join) ([]Event, *protocol.Error) {
	if err := d.needUser(); err != nil {
		return nil, err
	}
	ch, ok := d.s.channels[c.Channel]
	if !ok {
		return nil, protocol.NoSuchChannelOrInvite(c.Channel)
	}
	if _, banned := ch.bans[d.actor.User]; banned {
		if !d.s.Visible(d.actor, c.Channel) {
			return nil, protocol.NoSuchChannelOrInvite(c.Channel)
		}
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "you are banned from channel %q", c.Channel)
	}
	if _, member := ch.acl[d.actor.User]; member || d.s.CanAdminister(d.actor, c.Channel) {
		return nil, nil
	}
	if ch.visibility != protocol.Private {
		return nil, nil
	}
	inv, ok := d.s.invites[c.Token]
	switch {
	case c.Token == "" || !ok || inv.channel != c.Channel:
		return nil, protocol.NoSuchChannelOrInvite(c.Channel)
	case inv.uses != nil && *inv.uses <= 0:
		return nil, protocol.NoSuchChannelOrInvite(c.Channel)
	case inv.expiresAtMs != nil && d.now.UnixMilli() >= *inv.expiresAtMs:
		return nil, protocol.NoSuchChannelOrInvite(c.Channel)
	}
	return []Event{
		d.event(EvInviteRedeemed, RedeemData{Channel: c.Channel, Token: c.Token, User: d.actor.User}),
		d.event(EvACLAdded, MemberData{Channel: c.Channel, User: d.actor.User}),
	}, nil
}

func (d decider) ban(c Ban) ([]Event, *protocol.Error) {
	ch, err := d.administer(c.Channel)
	if err != nil {
		return nil, err
	}
	if _, banned := ch.bans[c.User]; banned {
		return nil, nil
	}
	if !d.s.UserExists(c.User) {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no user named %q", c.User)
	}
	return d.one(EvBanned, MemberData{Channel: c.Channel, User: c.User})
}

func (d decider) unban(c Unban) ([]Event, *protocol.Error) {
	ch, err := d.administer(c.Channel)
	if err != nil {
		return nil, err
	}
	if _, banned := ch.bans[c.User]; !banned {
		return nil, nil
	}
	return d.one(EvUnbanned, MemberData{Channel: c.Channel, User: c.User})
}

func (d decider) kick(c Kick) ([]Event, *protocol.Error) {
	if _, err := d.administer(c.Channel); err != nil {
		return nil, err
	}
	if strings.Contains(c.Target, "/") {
		if _, err := protocol.ParseSessionPath(c.Target); err != nil {
			return nil, protocol.Errorf(protocol.CodeMalformed, "%v", err)
		}
	} else if err := protocol.CheckName(c.Target); err != nil {
		return nil, malformedName("kick target", c.Target, err)
	}
	return d.one(EvKicked, KickData{Channel: c.Channel, Target: c.Target})
}

// approverGate is the common check of approver_add and approver_remove:
// the actor is a person's session of a registered user naming one of
// their machines, and (once the list has been set up) sits on an
// approver machine itself.
func (d decider) approverGate(machine string) (*userState, *protocol.Error) {
	if err := d.needUser(); err != nil {
		return nil, err
	}
	if d.actor.Bridge {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "not authorized: a bridge session cannot change approver machines")
	}
	if err := protocol.CheckName(machine); err != nil {
		return nil, malformedName("machine name", machine, err)
	}
	u := d.s.users[d.actor.User]
	if _, ok := u.machines[machine]; !ok {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no machine named %q", machine)
	}
	own := d.actor.machine()
	if approvers := d.s.Approvers(d.actor.User); len(approvers) > 0 {
		if !d.s.IsApprover(d.actor.User, own) {
			return nil, protocol.Errorf(protocol.CodeUnauthorized,
				"not authorized: only a session on an approver machine (%s) may change the list; this is %s",
				strings.Join(approvers, ", "), own)
		}
	} else if u.approversSet {
		return nil, protocol.Errorf(protocol.CodeUnauthorized,
			"not authorized: your approver list was set up and has since been emptied; a server admin can restore one machine with `conclave machine approver add NAME --user %s`", d.actor.User)
	}
	return u, nil
}

func (d decider) approverAdd(c ApproverAdd) ([]Event, *protocol.Error) {
	if c.User != "" && c.User != d.actor.User {
		return d.approverRestore(c)
	}
	u, err := d.approverGate(c.Machine)
	if err != nil {
		return nil, err
	}
	if u.machines[c.Machine].approver {
		return nil, nil
	}
	return d.one(EvApproverAdded, MachineData{User: d.actor.User, Machine: c.Machine})
}

func (d decider) approverRemove(c ApproverRemove) ([]Event, *protocol.Error) {
	u, err := d.approverGate(c.Machine)
	if err != nil {
		return nil, err
	}
	if !u.machines[c.Machine].approver {
		return nil, nil
	}
	return d.one(EvApproverRemoved, MachineData{User: d.actor.User, Machine: c.Machine})
}

// approverRestore is a server admin putting a machine on the approver
// list of another user whose list is empty: without it, a user whose
// approver machines were all removed or revoked could never set one up
// again (the list bootstraps from any machine only once).
func (d decider) approverRestore(c ApproverAdd) ([]Event, *protocol.Error) {
	if !d.actor.ServerAdmin {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "not authorized: only a server admin may change another user's approver list")
	}
	if err := protocol.CheckName(c.Machine); err != nil {
		return nil, malformedName("machine name", c.Machine, err)
	}
	u, ok := d.s.users[c.User]
	if !ok {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no user named %q", c.User)
	}
	if _, ok := u.machines[c.Machine]; !ok {
		return nil, protocol.Errorf(protocol.CodeNotFound, "no machine named %q of user %s", c.Machine, c.User)
	}
	if approvers := d.s.Approvers(c.User); len(approvers) > 0 {
		return nil, protocol.Errorf(protocol.CodeUnauthorized,
			"not authorized: %s has approver machines (%s); only a session on one of them may change the list", c.User, strings.Join(approvers, ", "))
	}
	return d.one(EvApproverAdded, MachineData{User: c.User, Machine: c.Machine})
}
