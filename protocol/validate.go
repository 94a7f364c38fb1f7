package protocol

import (
	"crypto/ed25519"
	"fmt"
)

// Validate checks the fields a frame of its type must carry. It returns an
// *Error with code malformed (or version_mismatch for a hello of another
// version) describing the first problem. It does not check limits that are
// the server's configuration (body size) or state (channel existence).
func (f *Frame) Validate() error {
	if !KnownType(f.Type) {
		return Errorf(CodeMalformed, "unknown frame type %q", truncate(f.Type, 40))
	}
	if len(f.ID) > MaxIDLen {
		return Errorf(CodeMalformed, "id is longer than %d bytes", MaxIDLen)
	}
	if IsRequest(f.Type) && f.ID == "" && f.Type != TPing && !f.isDelivery() {
		return Errorf(CodeMalformed, "%s request has no \"id\"", f.Type)
	}
	name := func(field, v string) error {
		if err := CheckName(v); err != nil {
			return Errorf(CodeMalformed, "invalid %s %q: %v", field, truncate(v, 80), err)
		}
		return nil
	}
	key := func() error {
		if len(f.Pubkey) != ed25519.PublicKeySize {
			return Errorf(CodeMalformed, "pubkey must be %d bytes, got %d", ed25519.PublicKeySize, len(f.Pubkey))
		}
		return nil
	}
	switch f.Type {
	case THello:
		if f.Version != Version {
			return Errorf(CodeVersionMismatch, "incompatible protocol version: server speaks %d, client sent %d", Version, f.Version)
		}
		if len(f.Client) > 200 {
			return Errorf(CodeMalformed, "client is longer than 200 bytes")
		}
		if f.Role != "" && f.Role != RoleBridge {
			return Errorf(CodeMalformed, "unknown role %q (want %q or none)", truncate(f.Role, 40), RoleBridge)
		}
		if err := checkInstance(f.Instance, f.SessionDefaulted); err != nil {
			return err
		}
		// hello creates the session handle: it follows the name profile.
		if err := CheckNewName(f.Session); err != nil {
			return Errorf(CodeMalformed, "invalid session handle %q: %v", truncate(f.Session, 80), err)
		}
		return nil
	case TChallenge:
		if len(f.Nonce) != NonceSize {
			return Errorf(CodeMalformed, "nonce must be %d bytes", NonceSize)
		}
		if f.ServerID == "" {
			return Errorf(CodeMalformed, "challenge has no server_id")
		}
	case TRegister:
		if err := name("username", f.Username); err != nil {
			return err
		}
		if err := name("machine name", f.Machine); err != nil {
			return err
		}
		return key()
	case TEnroll:
		if f.Token == "" || len(f.Token) > 128 {
			return Errorf(CodeMalformed, "enroll needs a token of 1 to 128 bytes")
		}
		return key()
	case TEnrollLink:
		return name("machine name", f.Machine)
	case TEnrollToken:
		if f.Token == "" {
			return Errorf(CodeMalformed, "enroll_token has no token")
		}
	case TAuth:
		if err := key(); err != nil {
			return err
		}
		if len(f.Signature) != ed25519.SignatureSize {
			return Errorf(CodeMalformed, "signature must be %d bytes, got %d", ed25519.SignatureSize, len(f.Signature))
		}
	case TJoin, TLeave, TDeleteChannel, TACLList, TBanList, TInviteList:
		return name("channel name", f.Channel)
	case TCreateChannel:
		if err := name("channel name", f.Channel); err != nil {
			return err
		}
		if f.Visibility != "" {
			if _, err := ParseVisibility(f.Visibility); err != nil {
				return Errorf(CodeMalformed, "%v", err)
			}
		}
	case TSetVisibility:
		if err := name("channel name", f.Channel); err != nil {
			return err
		}
		if _, err := ParseVisibility(f.Visibility); err != nil {
			return Errorf(CodeMalformed, "%v", err)
		}
	case TRenameChannel:
		if err := name("channel name", f.Channel); err != nil {
			return err
		}
		return name("new channel name", f.NewName)
	case TACLAdd, TACLRemove, TBan, TUnban:
		if err := name("channel name", f.Channel); err != nil {
			return err
		}
		return name("user name", f.User)
	case TKick:
		if err := name("channel name", f.Channel); err != nil {
			return err
		}
		if _, err := ParseSessionPath(f.Target); err != nil {
			return name("kick target", f.Target)
		}
	case TInviteCreate:
		if err := name("channel name", f.Channel); err != nil {
			return err
		}
		if f.Uses != nil && *f.Uses < 1 {
			return Errorf(CodeMalformed, "uses must be at least 1 (omit it for unlimited)")
		}
		if f.ExpiresInSecs != nil && (*f.ExpiresInSecs < 1 || *f.ExpiresInSecs > 10*365*24*3600) {
			return Errorf(CodeMalformed, "expires_in_secs must be between 1 and 10 years")
		}
	case TInviteRevoke:
		if f.Token == "" || len(f.Token) > 128 {
			return Errorf(CodeMalformed, "token must be 1 to 128 bytes")
		}
	case TUserRemove:
		return name("user name", f.User)
	case TUserAdd:
		if err := name("user name", f.User); err != nil {
			return err
		}
		if err := name("machine name", f.Machine); err != nil {
			return err
		}
		return key()
	case TMachineAdd:
		if err := name("machine name", f.Machine); err != nil {
			return err
		}
		return key()
	case TMachineRemove:
		return name("machine name", f.Machine)
	case TWho:
		if f.Channel != "" {
			return name("channel name", f.Channel)
		}
	case TChannelMsg:
		if err := name("channel name", f.Channel); err != nil {
			return err
		}
		if err := f.validFrom(); err != nil {
			return err
		}
		return f.validPayload()
	case TWhisper:
		if _, err := ParseSessionPath(f.Target); err != nil {
			return Errorf(CodeMalformed, "%v", err)
		}
		if err := f.validFrom(); err != nil {
			return err
		}
		return f.validPayload()
	case TReadSince:
		if err := name("channel name", f.Channel); err != nil {
			return err
		}
		if f.AfterSeq != nil && f.SinceMs != nil {
			return Errorf(CodeMalformed, "read_since takes after_seq or since_ms, not both")
		}
		if f.BeforeSeq != nil && (f.AfterSeq != nil || f.SinceMs != nil) {
			return Errorf(CodeMalformed, "read_since takes before_seq alone, without after_seq or since_ms")
		}
		if f.BeforeSeq != nil && f.UntilSeq != nil {
			return Errorf(CodeMalformed, "read_since takes until_seq or before_seq, not both")
		}
		if f.Limit < 0 {
			return Errorf(CodeMalformed, "limit must not be negative")
		}
	case TAudit:
		if f.Channel != "" {
			if err := name("channel name", f.Channel); err != nil {
				return err
			}
		}
		if f.User != "" {
			if err := name("actor", f.User); err != nil {
				return err
			}
		}
		if f.Limit < 0 {
			return Errorf(CodeMalformed, "limit must not be negative")
		}
	case TPermissionRequest:
		if err := f.validRequestID(); err != nil {
			return err
		}
		if err := f.validFrom(); err != nil {
			return err
		}
		for _, fl := range []struct {
			name string
			v    string
			max  int
		}{{"tool_name", f.ToolName, MaxToolNameLen}, {"description", f.Description, MaxDescriptionLen},
			{"input_preview", f.InputPreview, MaxInputPreviewLen}} {
			if len(fl.v) > fl.max {
				return Errorf(CodeMalformed, "%s is longer than %d bytes", fl.name, fl.max)
			}
		}
		if f.ToolName == "" {
			return Errorf(CodeMalformed, "permission_request has no tool_name")
		}
		if f.TsMs < 0 {
			return Errorf(CodeMalformed, "ts_ms must not be negative")
		}
	case TPermissionWithdraw:
		if err := f.validRequestID(); err != nil {
			return err
		}
	case TPermissionVerdict:
		if err := f.validRequestID(); err != nil {
			return err
		}
		if err := f.validFrom(); err != nil {
			return err
		}
		if f.Behavior != BehaviorAllow && f.Behavior != BehaviorDeny {
			return Errorf(CodeMalformed, "behavior must be %q or %q", BehaviorAllow, BehaviorDeny)
		}
		if f.Target != "" {
			if _, err := ParseSessionPath(f.Target); err != nil {
				return name("session handle", f.Target)
			}
		}
	case TPermissionResolved:
		if err := f.validRequestID(); err != nil {
			return err
		}
		if _, err := ParseSessionPath(f.From); err != nil {
			return Errorf(CodeMalformed, "invalid from: %v", err)
		}
	case TApproverAdd, TApproverRemove:
		if f.User != "" {
			if f.Type == TApproverRemove {
				return Errorf(CodeMalformed, "approver_remove takes no user")
			}
			if err := name("user name", f.User); err != nil {
				return err
			}
		}
		return name("machine name", f.Machine)
	case TError:
		if !f.Code.Known() {
			return Errorf(CodeMalformed, "unknown error code %q", truncate(string(f.Code), 40))
		}
	}
	return nil
}

// isDelivery reports whether a channel_msg or whisper is a server delivery
// (stamped with from and ts_ms, no id) rather than a client request.
func (f *Frame) isDelivery() bool {
	switch f.Type {
	case TChannelMsg, TWhisper, TPermissionRequest, TPermissionVerdict:
		return f.ID == "" && f.From != "" && f.TsMs != 0
	}
	return false
}

// validRequestID checks a permission request id: 1 to MaxRequestIDLen
// letters, digits, '-' or '_' (Claude Code's are five lower-case letters).
func (f *Frame) validRequestID() error {
	id := f.RequestID
	if id == "" || len(id) > MaxRequestIDLen {
		return Errorf(CodeMalformed, "request_id must be 1 to %d bytes", MaxRequestIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return Errorf(CodeMalformed, "request_id %q: only letters, digits, '-' and '_' are allowed", truncate(id, 80))
		}
	}
	return nil
}

func (f *Frame) validFrom() error {
	if f.isDelivery() {
		if _, err := ParseSessionPath(f.From); err != nil {
			return Errorf(CodeMalformed, "invalid from: %v", err)
		}
	}
	return nil
}

func (f *Frame) validPayload() error {
	switch {
	case f.Body == nil && f.Sealed == nil:
		return Errorf(CodeMalformed, "%s needs a body", f.Type)
	case f.Body != nil && f.Sealed != nil:
		return Errorf(CodeMalformed, "%s takes body or sealed, not both", f.Type)
	}
	return nil
}

// PayloadSize is the size counted against the body cap: the body's bytes or
// the sealed ciphertext's.
func (f *Frame) PayloadSize() int {
	if f.Body != nil {
		return len(*f.Body)
	}
	if f.Sealed != nil {
		return len(f.Sealed.Ciphertext) + len(f.Sealed.KeyID)
	}
	return 0
}

// ErrorFrame builds an error reply for request id (empty for unprompted).
func ErrorFrame(id string, e *Error) *Frame {
	return &Frame{Type: TError, ID: id, Code: e.Code, Message: e.Message, Reason: string(e.Reason)}
}

// AsError returns the *Error carried by an error frame.
// Its Reason is the frame's reason code; from a server that sent none, the
// reason whose message the frame carries.
func (f *Frame) AsError() *Error {
	r := Reason(f.Reason)
	if r == "" {
		r = reasonOfText(f.Code, f.Message)
	}
	return &Error{Code: f.Code, Message: f.Message, Reason: r}
}

// String names a frame for logs: its type and id, never its contents.
func (f *Frame) String() string {
	if f.ID != "" {
		return fmt.Sprintf("%s#%s", f.Type, f.ID)
	}
	return f.Type
}

// MaxInstanceLen is the longest hello.instance, in bytes.
const MaxInstanceLen = 64

// checkInstance checks hello's instance and session_defaulted: an instance
// is at most MaxInstanceLen bytes of printable ASCII without spaces, and a
// defaulted handle needs one (without it the server cannot tell this
// process's old session from another process's).
func checkInstance(instance string, defaulted bool) error {
	if len(instance) > MaxInstanceLen {
		return Errorf(CodeMalformed, "instance is longer than %d bytes", MaxInstanceLen)
	}
	for i := 0; i < len(instance); i++ {
		if c := instance[i]; c <= ' ' || c > '~' {
			return Errorf(CodeMalformed, "instance must be printable ASCII without spaces")
		}
	}
	if defaulted && instance == "" {
		return Errorf(CodeMalformed, "session_defaulted needs an instance")
	}
	return nil
}
