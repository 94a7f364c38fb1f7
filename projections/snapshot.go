package projections

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"

	"github.com/conclave/conclave/protocol"
)

// StateDump is a JSON-friendly view of the whole state, for
// `audit --at` and for snapshots. Every list is sorted: users, machines
// and channels by name, ACLs and bans by user, invites by token. Public
// keys are raw bytes (base64 in JSON). It holds invite tokens: treat it as
// a secret.
type StateDump struct {
	LastSeq  uint64        `json:"last_seq"`
	Users    []UserDump    `json:"users"`
	Channels []ChannelDump `json:"channels"`
}

// UserDump is one user in a [StateDump].
type UserDump struct {
	Name        string        `json:"name"`
	CreatedAtMs int64         `json:"created_at_ms"`
	Machines    []MachineDump `json:"machines"`
	// ApproversSet is true once the approver list has had a member (the
	// one-time bootstrap is spent).
	ApproversSet bool `json:"approvers_set"`
}

// MachineDump is one enrolled machine in a [UserDump].
type MachineDump struct {
	Name      string `json:"name"`
	Pubkey    []byte `json:"pubkey"`
	AddedAtMs int64  `json:"added_at_ms"`
	Approver  bool   `json:"approver"`
}

// ChannelDump is one channel in a [StateDump].
type ChannelDump struct {
	ID          uint64              `json:"id"`
	Name        string              `json:"name"`
	Visibility  protocol.Visibility `json:"visibility"`
	CreatedBy   string              `json:"created_by"`
	CreatedAtMs int64               `json:"created_at_ms"`
	ACL         []string            `json:"acl"`
	Bans        []string            `json:"bans"`
	Invites     []InviteDump        `json:"invites"`
}

// InviteDump is one outstanding invite in a [ChannelDump].
type InviteDump struct {
	Token       string `json:"token"`
	Uses        *int64 `json:"uses"`          // remaining; null = unlimited
	ExpiresAtMs *int64 `json:"expires_at_ms"` // null = never
	CreatedBy   string `json:"created_by"`
}

// Dump returns a copy of the whole state in a deterministic order.
func (s *State) Dump() StateDump {
	d := StateDump{LastSeq: s.lastSeq, Users: []UserDump{}, Channels: []ChannelDump{}}
	for _, name := range sortedKeys(s.users) {
		u := s.users[name]
		ud := UserDump{Name: name, CreatedAtMs: u.createdAtMs, Machines: []MachineDump{}, ApproversSet: u.approversSet}
		for _, m := range s.Machines(name) {
			ud.Machines = append(ud.Machines, MachineDump{Name: m.Name, Pubkey: m.Pubkey, AddedAtMs: m.AddedAtMs, Approver: m.Approver})
		}
		d.Users = append(d.Users, ud)
	}
	byChannel := map[string][]InviteDump{}
	for _, tok := range sortedKeys(s.invites) {
		inv := s.invites[tok]
		byChannel[inv.channel] = append(byChannel[inv.channel], InviteDump{Token: tok,
			Uses: clonePtr(inv.uses), ExpiresAtMs: clonePtr(inv.expiresAtMs), CreatedBy: inv.createdBy})
	}
	for _, name := range sortedKeys(s.channels) {
		ch := s.channels[name]
		cd := ChannelDump{ID: ch.id, Name: name, Visibility: ch.visibility, CreatedBy: ch.createdBy,
			CreatedAtMs: ch.createdAtMs, ACL: sortedKeys(ch.acl), Bans: sortedKeys(ch.bans),
			Invites: byChannel[name]}
		if cd.Invites == nil {
			cd.Invites = []InviteDump{}
		}
		d.Channels = append(d.Channels, cd)
	}
	return d
}

// snapshot is the encoding of a State: the schema version and its dump.
type snapshot struct {
	Schema int       `json:"schema"`
	State  StateDump `json:"state"`
}

// MarshalSnapshot encodes the state deterministically: the same state
// always gives the same bytes. The encoding carries [SchemaVersion].
func (s *State) MarshalSnapshot() ([]byte, error) {
	// gob, not JSON: a snapshot exists to make restarts fast, and gob
	// decodes several times faster. Structs and slices only (no maps), so
	// the bytes are deterministic.
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(snapshot{Schema: SchemaVersion, State: s.Dump()}); err != nil {
		return nil, fmt.Errorf("projections: marshal snapshot: %w", err)
	}
	return buf.Bytes(), nil
}

// ErrSchema is returned by [UnmarshalSnapshot] for a snapshot of another
// schema version.
var ErrSchema = errors.New("projections: snapshot of another schema version")

// UnmarshalSnapshot decodes a snapshot made by [State.MarshalSnapshot]. It
// checks every invariant the state relies on (valid names, unique keys,
// references to existing users and channels) and returns an error
// wrapping [ErrSchema] or [ErrInvalidEvent] rather than a State that could
// misbehave. It never panics.
func UnmarshalSnapshot(b []byte) (*State, error) {
	var snap snapshot
	r := bytes.NewReader(b)
	if err := gob.NewDecoder(r).Decode(&snap); err != nil {
		return nil, fmt.Errorf("%w: snapshot: %v", ErrInvalidEvent, err)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: snapshot: trailing data", ErrInvalidEvent)
	}
	if snap.Schema < 0 || !SchemaReadable(uint32(snap.Schema)) {
		return nil, fmt.Errorf("%w: got %d, want %d", ErrSchema, snap.Schema, SchemaVersion)
	}
	s, err := fromDump(snap.State)
	if err != nil {
		return nil, fmt.Errorf("%w: snapshot: %v", ErrInvalidEvent, err)
	}
	return s, nil
}

func fromDump(d StateDump) (*State, error) {
	s := New()
	s.lastSeq = d.LastSeq
	for _, ud := range d.Users {
		if err := checkName("user name", ud.Name); err != nil {
			return nil, err
		}
		if s.UserExists(ud.Name) {
			return nil, fmt.Errorf("user %q twice", ud.Name)
		}
		s.users[ud.Name] = &userState{createdAtMs: ud.CreatedAtMs, machines: map[string]*machineState{}, approversSet: ud.ApproversSet}
		s.userSkel.add(ud.Name)
		for _, md := range ud.Machines {
			if err := checkName("machine name", md.Name); err != nil {
				return nil, err
			}
			if _, ok := s.users[ud.Name].machines[md.Name]; ok {
				return nil, fmt.Errorf("machine %q of user %q twice", md.Name, ud.Name)
			}
			if err := s.checkNewKey(md.Pubkey); err != nil {
				return nil, err
			}
			s.addMachine(ud.Name, md.Name, md.Pubkey, md.AddedAtMs)
			if md.Approver {
				s.users[ud.Name].machines[md.Name].approver = true
				s.users[ud.Name].approversSet = true
			}
		}
	}
	for _, cd := range d.Channels {
		if err := checkName("channel name", cd.Name); err != nil {
			return nil, err
		}
		if _, ok := s.channels[cd.Name]; ok {
			return nil, fmt.Errorf("channel %q twice", cd.Name)
		}
		if err := checkVisibility(cd.Visibility); err != nil {
			return nil, err
		}
		if !s.UserExists(cd.CreatedBy) {
			return nil, fmt.Errorf("creator %q of channel %q is not a user", cd.CreatedBy, cd.Name)
		}
		ch := &channelState{id: cd.ID, visibility: cd.Visibility, createdBy: cd.CreatedBy, createdAtMs: cd.CreatedAtMs,
			acl: map[string]struct{}{}, bans: map[string]struct{}{}}
		for _, u := range cd.ACL {
			if !s.UserExists(u) {
				return nil, fmt.Errorf("ACL of channel %q names unknown user %q", cd.Name, u)
			}
			ch.acl[u] = struct{}{}
		}
		for _, u := range cd.Bans {
			if err := checkName("banned user name", u); err != nil {
				return nil, err
			}
			ch.bans[u] = struct{}{}
		}
		s.channels[cd.Name] = ch
		s.chanSkel.add(cd.Name)
		for _, id := range cd.Invites {
			if id.Token == "" {
				return nil, errors.New("empty invite token")
			}
			if _, ok := s.invites[id.Token]; ok {
				return nil, errors.New("invite token twice")
			}
			if id.Uses != nil && *id.Uses <= 0 {
				return nil, fmt.Errorf("invite uses %d, want at least 1", *id.Uses)
			}
			s.invites[id.Token] = &inviteState{channel: cd.Name, uses: clonePtr(id.Uses),
				expiresAtMs: clonePtr(id.ExpiresAtMs), createdBy: id.CreatedBy}
		}
	}
	return s, nil
}
