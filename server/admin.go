package server

import (
	"context"
	"crypto/ed25519"
	"time"

	"github.com/conclave/conclave/projections"
	"github.com/conclave/conclave/protocol"
)

// dispatchAdmin runs channel administration and moderation requests.
func (sess *session) dispatchAdmin(ctx context.Context, f *protocol.Frame) (*protocol.Frame, error) {
	s := sess.srv
	by := sess.user
	switch f.Type {
	case protocol.TDeleteChannel:
		ch := f.Channel
		var cid uint64
		err := s.submitPrepared(ctx, sess.actor, projections.DeleteChannel{Channel: ch}, func(st *projections.State) {
			if c, ok := st.Channel(ch); ok {
				cid = c.ID
			}
		}, func() {
			s.history.forget(cid)
			s.hub.removeFromChannel(ch, all, "channel deleted by "+by)
		})
		return ack(ch), err
	case protocol.TRenameChannel:
		ch, nn := f.Channel, f.NewName
		err := s.submit(ctx, sess.actor, projections.RenameChannel{Channel: ch, NewName: nn}, func() {
			s.hub.rename(ch, nn)
		})
		return ack(nn), err
	case protocol.TSetVisibility:
		err := s.submit(ctx, sess.actor, projections.SetVisibility{Channel: f.Channel, Visibility: protocol.Visibility(f.Visibility)}, nil)
		return ack(f.Channel), err
	case protocol.TACLAdd:
		err := s.submit(ctx, sess.actor, projections.ACLAdd{Channel: f.Channel, User: f.User}, nil)
		return ack(f.User), err
	case protocol.TACLRemove:
		ch, user := f.Channel, f.User
		err := s.submit(ctx, sess.actor, projections.ACLRemove{Channel: ch, User: user}, func() {
			s.hub.removeFromChannel(ch, ofUser(user), "removed from the channel's access list by "+by)
		})
		return ack(user), err
	case protocol.TBan:
		ch, user := f.Channel, f.User
		err := s.submit(ctx, sess.actor, projections.Ban{Channel: ch, User: user}, func() {
			s.hub.removeFromChannel(ch, ofUser(user), "banned from the channel by "+by)
		})
		return ack(user), err
	case protocol.TUnban:
		err := s.submit(ctx, sess.actor, projections.Unban{Channel: f.Channel, User: f.User}, nil)
		return ack(f.User), err
	case protocol.TKick:
		ch, target := f.Channel, f.Target
		keep := ofUser(target)
		if _, err := protocol.ParseSessionPath(target); err == nil {
			keep = func(o *session) bool { return o.path == target }
		}
		err := s.submit(ctx, sess.actor, projections.Kick{Channel: ch, Target: target}, func() {
			s.hub.removeFromChannel(ch, keep, "kicked from the channel by "+by)
		})
		return ack(target), err
	case protocol.TInviteCreate:
		token, err := newToken()
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeInternal, "no randomness")
		}
		cmd := projections.InviteCreate{Channel: f.Channel, Token: token, Uses: f.Uses}
		var expires *string
		if f.ExpiresInSecs != nil {
			at := time.Now().Add(time.Duration(*f.ExpiresInSecs) * time.Second)
			ms := at.UnixMilli()
			cmd.ExpiresAtMs = &ms
			txt := at.UTC().Format(time.RFC3339)
			expires = &txt
		}
		if err := s.submit(ctx, sess.actor, cmd, nil); err != nil {
			return nil, err
		}
		return &protocol.Frame{Type: protocol.TInviteToken, Channel: f.Channel, Token: token, Uses: f.Uses, ExpiresAt: expires}, nil
	case protocol.TInviteRevoke:
		err := s.submit(ctx, sess.actor, projections.InviteRevoke{Token: f.Token}, nil)
		return ack("invite revoked"), err
	case protocol.TUserRemove:
		user := f.User
		var created []projections.Channel
		err := s.submitPrepared(ctx, sess.actor, projections.UserRemove{User: user}, func(st *projections.State) {
			for _, c := range st.Channels() {
				if c.CreatedBy == user {
					created = append(created, c)
				}
			}
		}, func() {
			for _, c := range created {
				s.history.forget(c.ID)
				s.hub.removeFromChannel(c.Name, all, "channel deleted: its creator was removed from the server")
			}
			s.hub.kill(func(o *session) bool { return o.user == user && o != sess }, protocol.ReasonUserRemoved)
			if sess.user == user {
				sess.send(&protocol.Frame{Type: protocol.TAck, ID: f.ID, Detail: user})
				sess.kill(protocol.ReasonUserRemoved)
			}
		})
		if err == nil && sess.user == user {
			return nil, nil
		}
		return ack(user), err
	case protocol.TUserAdd:
		if !sess.actor.ServerAdmin {
			return nil, protocol.Errorf(protocol.CodeUnauthorized, "not authorized: server admin role required")
		}
		if pin, ok := s.admins[f.User]; ok && pin != nil && !pin.Equal(ed25519.PublicKey(f.Pubkey)) {
			return nil, protocol.Errorf(protocol.CodeUnauthorized, "username %q is reserved for a different key", f.User)
		}
		err := s.submit(ctx, sess.actor, projections.Register{User: f.User, Machine: f.Machine, Pubkey: f.Pubkey}, nil)
		return ack(f.User), err
	case protocol.TACLList, protocol.TBanList, protocol.TInviteList:
		return sess.adminList(f)
	}
	return nil, protocol.Errorf(protocol.CodeMalformed, "unexpected %s frame from a client", f.Type)
}

// adminList answers acl_list, ban_list and invite_list for channel admins.
func (sess *session) adminList(f *protocol.Frame) (*protocol.Frame, error) {
	s := sess.srv
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.state.Channel(f.Channel); !ok || !s.state.Visible(sess.actor, f.Channel) {
		return nil, protocol.NoSuchChannel(f.Channel)
	}
	if !s.state.CanAdminister(sess.actor, f.Channel) {
		return nil, protocol.Errorf(protocol.CodeUnauthorized, "not authorized: you do not administer channel %q", f.Channel)
	}
	switch f.Type {
	case protocol.TACLList:
		return &protocol.Frame{Type: protocol.TUserList, Users: s.state.ACL(f.Channel)}, nil
	case protocol.TBanList:
		return &protocol.Frame{Type: protocol.TUserList, Users: s.state.Bans(f.Channel)}, nil
	}
	invs := s.state.Invites(f.Channel)
	out := make([]protocol.InviteInfo, 0, len(invs))
	for _, inv := range invs {
		info := protocol.InviteInfo{Channel: inv.Channel, Token: inv.Token, Uses: inv.Uses}
		if inv.ExpiresAtMs != nil {
			t := time.UnixMilli(*inv.ExpiresAtMs).UTC().Format(time.RFC3339)
			info.ExpiresAt = &t
		}
		out = append(out, info)
	}
	return &protocol.Frame{Type: protocol.TInvites, Invites: out}, nil
}

func all(*session) bool { return true }

func ofUser(user string) func(*session) bool {
	return func(o *session) bool { return o.user == user }
}
