package projections

import "github.com/conclave/conclave/protocol"

// skeletons counts the names of one namespace (users, or channels) by
// their [protocol.NameSkeleton], so that a new name confusable with an
// existing one is found without a scan. A count, not a set: a log written
// before the name profile may hold two names with one skeleton ("Alice"
// and "alice").
type skeletons map[string]int

func (k skeletons) add(name string) { k[protocol.NameSkeleton(name)]++ }

func (k skeletons) remove(name string) {
	sk := protocol.NameSkeleton(name)
	if k[sk] <= 1 {
		delete(k, sk)
		return
	}
	k[sk]--
}

// clashes reports whether name is confusable with a name of the
// namespace other than except (the channel being renamed).
func (k skeletons) clashes(name, except string) bool {
	sk := protocol.NameSkeleton(name)
	n := k[sk]
	if except != "" && protocol.NameSkeleton(except) == sk {
		n--
	}
	return n > 0
}

// confusableWith returns a name among names, other than except, that name
// is confusable with.
func confusableWith[V any](name string, names map[string]V, except string) (string, bool) {
	sk := protocol.NameSkeleton(name)
	for other := range names {
		if other != except && protocol.NameSkeleton(other) == sk {
			return other, true
		}
	}
	return "", false
}

// newName refuses a name outside the profile with malformed, naming what
// it was to be ("user name", "channel name").
func newName(what, name string) *protocol.Error {
	if err := protocol.CheckNewName(name); err != nil {
		return protocol.Errorf(protocol.CodeMalformed, "invalid %s %q: %v", what, name, err)
	}
	return nil
}

// confusableNote says what "confusable" means, in every such refusal.
const confusableNote = "names that differ only in case, in 0/o, 1/l, rn/m or in '-', '_' and '.' are refused as lookalikes"

// CheckNewUser reports why name may not be registered as a new user:
// outside the name profile (malformed), taken, or confusable with an
// existing user (conflict, naming that user: user names are public).
func (s *State) CheckNewUser(name string) *protocol.Error {
	if err := newName("user name", name); err != nil {
		return err
	}
	if s.UserExists(name) {
		return protocol.Errorf(protocol.CodeConflict, "username %q is already taken", name)
	}
	if s.userSkel.clashes(name, "") {
		other, _ := confusableWith(name, s.users, "")
		return protocol.Errorf(protocol.CodeConflict, "username %q is confusable with the existing user %q (%s)", name, other, confusableNote)
	}
	return nil
}

// CheckNewMachine reports why user may not add a machine called name:
// outside the name profile, taken, or confusable with one of the user's
// machines. user must exist.
func (s *State) CheckNewMachine(user, name string) *protocol.Error {
	if err := newName("machine name", name); err != nil {
		return err
	}
	u, ok := s.users[user]
	if !ok {
		return protocol.Errorf(protocol.CodeNotFound, "no user named %q", user)
	}
	if _, ok := u.machines[name]; ok {
		return protocol.Errorf(protocol.CodeConflict, "machine %q already exists", name)
	}
	if other, ok := confusableWith(name, u.machines, ""); ok {
		return protocol.Errorf(protocol.CodeConflict, "machine name %q is confusable with your machine %q (%s)", name, other, confusableNote)
	}
	return nil
}

// CheckNewChannel reports why a channel may not be created as (or
// renamed to, from except) name: outside the profile, taken, or
// confusable with an existing channel. The confusable channel is not
// named: it may be private.
func (s *State) CheckNewChannel(name, except string) *protocol.Error {
	if err := newName("channel name", name); err != nil {
		return err
	}
	if _, ok := s.channels[name]; ok {
		return protocol.Errorf(protocol.CodeConflict, "channel %q already exists", name)
	}
	if s.chanSkel.clashes(name, except) {
		return protocol.Errorf(protocol.CodeConflict, "channel name %q is confusable with an existing channel's (%s)", name, confusableNote)
	}
	return nil
}
