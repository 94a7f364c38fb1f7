package projections

import (
	"crypto/ed25519"
	"slices"
	"strings"

	"github.com/conclave/conclave/protocol"
)

// State is the projection of the event log. The zero value is not usable;
// call [New] or [UnmarshalSnapshot]. It is not safe for concurrent use.
type State struct {
	lastSeq  uint64
	users    map[string]*userState    // by user name
	keys     map[string]keyOwner      // by string(pubkey)
	channels map[string]*channelState // by channel name
	invites  map[string]*inviteState  // by token
	// userSkel and chanSkel index users and channels by name skeleton
	// (names.go); they follow users and channels.
	userSkel skeletons
	chanSkel skeletons
}

type userState struct {
	createdAtMs int64
	machines    map[string]*machineState // by machine name
	// approversSet is true once the user's approver list has had a
	// member: the bootstrap (an add from any machine) happens only once.
	approversSet bool
}

type machineState struct {
	pubkey    []byte
	addedAtMs int64
	approver  bool
}

type keyOwner struct{ user, machine string }

type channelState struct {
	id          uint64 // seq of its channel_created event; never reused
	visibility  protocol.Visibility
	createdBy   string
	createdAtMs int64
	acl         map[string]struct{}
	bans        map[string]struct{}
}

type inviteState struct {
	channel     string
	uses        *int64 // remaining; nil = unlimited
	expiresAtMs *int64 // nil = never
	createdBy   string
}

// New returns an empty State.
func New() *State {
	return &State{
		users:    map[string]*userState{},
		keys:     map[string]keyOwner{},
		channels: map[string]*channelState{},
		invites:  map[string]*inviteState{},
		userSkel: skeletons{},
		chanSkel: skeletons{},
	}
}

// LastSeq returns the sequence number of the last applied event (0 if
// none).
func (s *State) LastSeq() uint64 { return s.lastSeq }

// UserByKey resolves an enrolled public key to its user and machine.
func (s *State) UserByKey(pub ed25519.PublicKey) (user, machine string, ok bool) {
	o, ok := s.keys[string(pub)]
	return o.user, o.machine, ok
}

// UserExists reports whether a user of that name is registered.
func (s *State) UserExists(name string) bool {
	_, ok := s.users[name]
	return ok
}

// Users returns every user, sorted by name.
func (s *State) Users() []User {
	out := make([]User, 0, len(s.users))
	for _, name := range sortedKeys(s.users) {
		out = append(out, User{Name: name, CreatedAtMs: s.users[name].createdAtMs})
	}
	return out
}

// Machines returns the machines of user, sorted by name (nil if the user
// does not exist).
func (s *State) Machines(user string) []Machine {
	u, ok := s.users[user]
	if !ok {
		return nil
	}
	out := make([]Machine, 0, len(u.machines))
	for _, name := range sortedKeys(u.machines) {
		m := u.machines[name]
		out = append(out, Machine{User: user, Name: name, Pubkey: slices.Clone(m.pubkey), AddedAtMs: m.addedAtMs, Approver: m.approver})
	}
	return out
}

// Approvers returns the names of user's approver machines, sorted (empty
// if none or if the user does not exist).
func (s *State) Approvers(user string) []string {
	out := []string{}
	u, ok := s.users[user]
	if !ok {
		return out
	}
	for _, name := range sortedKeys(u.machines) {
		if u.machines[name].approver {
			out = append(out, name)
		}
	}
	return out
}

// IsApprover reports whether machine of user is on the user's approver
// list.
func (s *State) IsApprover(user, machine string) bool {
	u, ok := s.users[user]
	if !ok {
		return false
	}
	m, ok := u.machines[machine]
	return ok && m.approver
}

// Channel returns the channel of that name. It does no access check.
func (s *State) Channel(name string) (Channel, bool) {
	ch, ok := s.channels[name]
	if !ok {
		return Channel{}, false
	}
	return ch.info(name), true
}

func (ch *channelState) info(name string) Channel {
	return Channel{ID: ch.id, Name: name, Visibility: ch.visibility, CreatedBy: ch.createdBy, CreatedAtMs: ch.createdAtMs}
}

// ChannelCount returns the number of channels.
func (s *State) ChannelCount() int { return len(s.channels) }

// Channels returns every channel, sorted by name. It does no access check.
func (s *State) Channels() []Channel {
	out := make([]Channel, 0, len(s.channels))
	for _, name := range sortedKeys(s.channels) {
		out = append(out, s.channels[name].info(name))
	}
	return out
}

// IsMember reports whether user is on channel's ACL.
func (s *State) IsMember(channel, user string) bool {
	ch, ok := s.channels[channel]
	if !ok {
		return false
	}
	_, ok = ch.acl[user]
	return ok
}

// IsBanned reports whether user is banned from channel.
func (s *State) IsBanned(channel, user string) bool {
	ch, ok := s.channels[channel]
	if !ok {
		return false
	}
	_, ok = ch.bans[user]
	return ok
}

// CanAdminister reports whether actor administers channel: its creator or
// a server admin. It is false for a channel that does not exist.
func (s *State) CanAdminister(actor Actor, channel string) bool {
	ch, ok := s.channels[channel]
	if !ok {
		return false
	}
	return actor.ServerAdmin || (actor.User != "" && ch.createdBy == actor.User)
}

// Visible reports whether actor may know that channel exists: a public or
// unlisted channel is visible to anyone; a private one only to its ACL
// members, its creator and server admins. It is false for a channel that
// does not exist.
func (s *State) Visible(actor Actor, channel string) bool {
	ch, ok := s.channels[channel]
	if !ok {
		return false
	}
	if ch.visibility != protocol.Private || s.CanAdminister(actor, channel) {
		return true
	}
	_, member := ch.acl[actor.User]
	return actor.User != "" && member
}

// ListChannels returns the channels actor may list, sorted by name: every
// channel for a server admin; for others the public channels and those
// whose ACL they are on. Member reports ACL membership.
func (s *State) ListChannels(actor Actor) []protocol.ChannelInfo {
	out := []protocol.ChannelInfo{}
	for _, name := range sortedKeys(s.channels) {
		ch := s.channels[name]
		_, member := ch.acl[actor.User]
		member = member && actor.User != ""
		if actor.ServerAdmin || member || ch.visibility == protocol.Public {
			out = append(out, protocol.ChannelInfo{Name: name, Visibility: ch.visibility, Member: member})
		}
	}
	return out
}

// ACL returns the users on channel's ACL, sorted (nil if the channel does
// not exist).
func (s *State) ACL(channel string) []string {
	ch, ok := s.channels[channel]
	if !ok {
		return nil
	}
	return sortedKeys(ch.acl)
}

// Bans returns the users banned from channel, sorted (nil if the channel
// does not exist).
func (s *State) Bans(channel string) []string {
	ch, ok := s.channels[channel]
	if !ok {
		return nil
	}
	return sortedKeys(ch.bans)
}

// Invites returns channel's outstanding invites (expired ones included
// until revoked), sorted by token.
func (s *State) Invites(channel string) []Invite {
	out := []Invite{}
	for _, tok := range sortedKeys(s.invites) {
		if inv := s.invites[tok]; inv.channel == channel {
			out = append(out, inv.info(tok))
		}
	}
	return out
}

func (inv *inviteState) info(token string) Invite {
	return Invite{Channel: inv.channel, Token: token, Uses: clonePtr(inv.uses),
		ExpiresAtMs: clonePtr(inv.expiresAtMs), CreatedBy: inv.createdBy}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func clonePtr(p *int64) *int64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// actorUser returns the user part of an event's actor path
// ("user/machine/session"), or the whole string (e.g. "server").
func actorUser(actor string) string {
	if i := strings.IndexByte(actor, '/'); i >= 0 {
		return actor[:i]
	}
	return actor
}
