package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Version is the only protocol version this package speaks.
const Version = 1

// Subprotocol is the WebSocket subprotocol clients may offer.
const Subprotocol = "conclave.v1"

// Size limits.
const (
	MaxFramePreAuth  = 1 << 20  // bytes in one WebSocket message before authentication
	MaxFramePostAuth = 16 << 20 // bytes in one WebSocket message after authentication
	DefaultMaxBody   = 64 << 10 // default cap on body and sealed.ciphertext
	// MaxBodyCeiling is the largest body cap a server may be configured
	// with (serve --max-body): a body of that size, escaped at worst six
	// bytes for one (a "<" is sent as \u003c), still fits in MaxMessage.
	MaxBodyCeiling = 1 << 20
	// MaxMessage is the most bytes the server sends in one WebSocket
	// message; it is announced in established (max_message), so that
	// clients size their read limit from it. Coalescing never makes a
	// message larger than CoalesceBytes; only a single frame (a history
	// page, about 4 MiB at most) can be larger than that.
	MaxMessage = 16 << 20
	// CoalesceBytes bounds the bytes of several frames the server puts in
	// one message (a single larger frame is sent alone).
	CoalesceBytes  = 1 << 20
	MaxIDLen       = 64  // bytes in a request id
	HistoryPageMax = 500 // messages in one history page
)

// Frame types. Client requests, server replies and unprompted server frames.
const (
	// Handshake.
	THello       = "hello"
	TChallenge   = "challenge"
	TRegister    = "register"
	TAuth        = "auth"
	TEstablished = "established"
	TEnroll      = "enroll" // a browser's first login, with a one-time link's token

	// Requests (client to server).
	TPing          = "ping"
	TJoin          = "join"
	TLeave         = "leave"
	TWho           = "who"
	TListChannels  = "list_channels"
	TListMachines  = "list_machines"
	TListUsers     = "list_users"
	TChannelMsg    = "channel_msg" // also a delivery (server to client)
	TWhisper       = "whisper"     // also a delivery (server to client)
	TReadSince     = "read_since"
	TCreateChannel = "create_channel"
	TDeleteChannel = "delete_channel"
	TRenameChannel = "rename_channel"
	TSetVisibility = "set_visibility"
	TACLAdd        = "acl_add"
	TACLRemove     = "acl_remove"
	TACLList       = "acl_list"
	TInviteCreate  = "invite_create"
	TInviteRevoke  = "invite_revoke"
	TInviteList    = "invite_list"
	TKick          = "kick"
	TBan           = "ban"
	TUnban         = "unban"
	TBanList       = "ban_list"
	TUserRemove    = "user_remove"
	TMachineAdd    = "machine_add"
	TMachineRemove = "machine_remove"
	TAudit         = "audit"
	TUserAdd       = "user_add"
	TEnrollLink    = "enroll_link"

	// Permission relay (see docs/PROTOCOL.md, "Permission relay").
	TPermissionRequest = "permission_request" // bridge to server; also a delivery to approvers
	TPermissionVerdict = "permission_verdict" // approver to server; also a delivery to the bridge
	TPermissionList    = "permission_list"
	// TPermissionWithdraw: bridge to server, the runtime no longer waits
	// on its request (a hook that gave up).
	TPermissionWithdraw = "permission_withdraw"
	TApproverAdd        = "approver_add"
	TApproverRemove     = "approver_remove"

	// Replies (server to client, echoing the request id).
	TPong        = "pong"
	TJoined      = "joined"
	TAck         = "ack"
	TPresence    = "presence"
	TChannelList = "channel_list"
	TMachineList = "machine_list"
	TUserList    = "user_list"
	TInviteToken = "invite_token"
	TInvites     = "invites"
	THistory     = "history"
	TAuditEvents = "audit_events"
	TPermissions = "permissions"
	TEnrollToken = "enroll_token"
	TError       = "error"

	// Unprompted notices (server to client).
	TUnsubscribed       = "unsubscribed"
	TRenamed            = "renamed"
	TPermissionResolved = "permission_resolved"
)

// RoleBridge is hello.role of a session that an agent drives (conclave
// bridge). Such a session may relay permission requests but never answers
// one, nor changes who may. The empty role is a person's client (the CLI,
// tail).
const RoleBridge = "bridge"

// Permission verdicts (permission_verdict.behavior), as Claude Code names
// them.
const (
	BehaviorAllow = "allow"
	BehaviorDeny  = "deny"
)

// Permission request limits: Claude Code's ids are five letters and its
// input preview about 200 characters; these leave room and bound memory.
const (
	MaxRequestIDLen     = 64
	MaxToolNameLen      = 256
	MaxDescriptionLen   = 4096
	MaxInputPreviewLen  = 4096
	MaxPermissionReason = 200
)

// Sealed is the reserved end-to-end encrypted payload. v1 relays and stores
// it verbatim and never produces it.
type Sealed struct {
	Ciphertext []byte `json:"ciphertext"`
	KeyID      string `json:"key_id,omitempty"`
}

// ChannelInfo describes one channel in a channel_list reply.
type ChannelInfo struct {
	Name       string     `json:"name"`
	Visibility Visibility `json:"visibility"`
	Member     bool       `json:"member"`
}

// MachineInfo describes one enrolled machine in a machine_list reply.
type MachineInfo struct {
	Name        string `json:"name"`
	Pubkey      []byte `json:"pubkey"`
	Fingerprint string `json:"fingerprint"`
	AddedAt     string `json:"added_at"`
	// Approver reports whether sessions on this machine may answer the
	// user's permission requests.
	Approver bool `json:"approver,omitempty"`
}

// PermissionInfo is one pending permission request in a permissions reply:
// From is the bridge session that asked, TsMs when Claude Code asked.
type PermissionInfo struct {
	From         string `json:"from"`
	RequestID    string `json:"request_id"`
	ToolName     string `json:"tool_name"`
	Description  string `json:"description"`
	InputPreview string `json:"input_preview"`
	TsMs         int64  `json:"ts_ms"`
}

// InviteInfo describes one outstanding invite.
type InviteInfo struct {
	Channel   string  `json:"channel"`
	Token     string  `json:"token"`
	Uses      *int64  `json:"uses"`       // remaining uses; null = unlimited
	ExpiresAt *string `json:"expires_at"` // RFC 3339; null = never
}

// HistoryMessage is one stored channel message.
//
// A gap (Gap true, no From, body or time) marks a seq the channel numbered
// that the history does not hold: a post the server could not store
// (it may have reached live subscribers) or a damaged record. A reader
// passes over it; nothing more will come for that seq.
type HistoryMessage struct {
	Seq    uint64  `json:"seq"`
	From   string  `json:"from,omitempty"`  // always set but in a gap
	TsMs   int64   `json:"ts_ms,omitempty"` // always set but in a gap
	Body   *string `json:"body,omitempty"`
	Sealed *Sealed `json:"sealed,omitempty"`
	Gap    bool    `json:"gap,omitempty"`
}

// AuditEvent is one event of the server's event log, as served to admins.
// Data is the event's JSON body; invite tokens in it are shortened to a
// fingerprint unless the request asked for them and may see them.
type AuditEvent struct {
	Seq   uint64          `json:"seq"`
	TsMs  int64           `json:"ts_ms"`
	Actor string          `json:"actor"`
	Type  string          `json:"type"`
	Data  json.RawMessage `json:"data"`
}

// Frame is one protocol frame. It is a flat union: Type says which fields
// are meaningful (see docs/PROTOCOL.md); the others are left empty and are
// omitted on the wire. An absent list means an empty one.
type Frame struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`

	// hello
	Version int    `json:"version,omitempty"`
	Session string `json:"session,omitempty"`
	Client  string `json:"client,omitempty"`
	Role    string `json:"role,omitempty"`
	// Instance is a random id a client process makes once and sends in
	// every hello; SessionDefaulted says the handle was not chosen by the
	// user (see docs/PROTOCOL.md, "Two sessions, one handle").
	Instance         string `json:"instance,omitempty"`
	SessionDefaulted bool   `json:"session_defaulted,omitempty"`

	// challenge, established
	Nonce    []byte `json:"nonce,omitempty"`
	ServerID string `json:"server_id,omitempty"`

	// register, auth, machine_add
	Username  string `json:"username,omitempty"`
	Machine   string `json:"machine,omitempty"`
	Pubkey    []byte `json:"pubkey,omitempty"`
	Signature []byte `json:"signature,omitempty"`

	// established
	Path       string `json:"path,omitempty"`
	Admin      *bool  `json:"admin,omitempty"`
	MaxBody    int    `json:"max_body,omitempty"`    // the server's body cap
	MaxMessage int    `json:"max_message,omitempty"` // the largest message the server sends

	// channel verbs
	Channel    string `json:"channel,omitempty"`
	NewName    string `json:"new_name,omitempty"`
	Visibility string `json:"visibility,omitempty"`
	Token      string `json:"token,omitempty"`
	User       string `json:"user,omitempty"`
	Target     string `json:"target,omitempty"`
	Reason     string `json:"reason,omitempty"`

	// invite_create
	Uses          *int64  `json:"uses,omitempty"`
	ExpiresInSecs *int64  `json:"expires_in_secs,omitempty"`
	ExpiresAt     *string `json:"expires_at,omitempty"`

	// messages
	From   string  `json:"from,omitempty"`
	Body   *string `json:"body,omitempty"`
	Sealed *Sealed `json:"sealed,omitempty"`
	TsMs   int64   `json:"ts_ms,omitempty"`
	Seq    uint64  `json:"seq,omitempty"` // also joined's head: the channel's position at the join

	// read_since, history, audit
	AfterSeq  *uint64 `json:"after_seq,omitempty"`
	BeforeSeq *uint64 `json:"before_seq,omitempty"`
	UntilSeq  *uint64 `json:"until_seq,omitempty"` // read_since: up to this seq, once stored
	SinceMs   *int64  `json:"since_ms,omitempty"`
	UntilMs   *int64  `json:"until_ms,omitempty"`

	// audit
	EventType  string       `json:"event_type,omitempty"`
	ShowTokens bool         `json:"show_tokens,omitempty"`
	Events     []AuditEvent `json:"events,omitempty"`
	Limit      int          `json:"limit,omitempty"`
	NextSeq    uint64       `json:"next_seq,omitempty"`
	More       bool         `json:"more,omitempty"`

	// permission_request, permission_verdict, permission_resolved
	RequestID    string `json:"request_id,omitempty"`
	ToolName     string `json:"tool_name,omitempty"`
	Description  string `json:"description,omitempty"`
	InputPreview string `json:"input_preview,omitempty"`
	Behavior     string `json:"behavior,omitempty"`
	// enroll_token
	URL string `json:"url,omitempty"`

	// replies
	Detail      string           `json:"detail,omitempty"`
	Permissions []PermissionInfo `json:"permissions,omitempty"`
	Sessions    []string         `json:"sessions,omitempty"`
	Channels    []ChannelInfo    `json:"channels,omitempty"`
	Machines    []MachineInfo    `json:"machines,omitempty"`
	Users       []string         `json:"users,omitempty"`
	Invites     []InviteInfo     `json:"invites,omitempty"`
	Messages    []HistoryMessage `json:"messages,omitempty"`

	// error
	Code    Code   `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// Direction says who may send a frame type.
type Direction int

// Directions.
const (
	ClientToServer Direction = 1 << iota
	ServerToClient
)

// kinds maps each frame type to who sends it and whether it is a request
// that expects a reply.
var kinds = map[string]struct {
	dir     Direction
	request bool
}{
	THello: {ClientToServer, false}, TChallenge: {ServerToClient, false},
	TRegister: {ClientToServer, false}, TAuth: {ClientToServer, false},
	TEstablished: {ServerToClient, false}, TEnroll: {ClientToServer, false},

	TPing: {ClientToServer, true}, TJoin: {ClientToServer, true}, TLeave: {ClientToServer, true},
	TWho: {ClientToServer, true}, TListChannels: {ClientToServer, true},
	TListMachines: {ClientToServer, true}, TListUsers: {ClientToServer, true},
	TChannelMsg: {ClientToServer | ServerToClient, true}, TWhisper: {ClientToServer | ServerToClient, true},
	TReadSince: {ClientToServer, true}, TCreateChannel: {ClientToServer, true},
	TDeleteChannel: {ClientToServer, true}, TRenameChannel: {ClientToServer, true},
	TSetVisibility: {ClientToServer, true}, TACLAdd: {ClientToServer, true},
	TACLRemove: {ClientToServer, true}, TACLList: {ClientToServer, true},
	TInviteCreate: {ClientToServer, true}, TInviteRevoke: {ClientToServer, true},
	TInviteList: {ClientToServer, true}, TKick: {ClientToServer, true}, TBan: {ClientToServer, true},
	TUnban: {ClientToServer, true}, TBanList: {ClientToServer, true},
	TUserRemove: {ClientToServer, true}, TMachineAdd: {ClientToServer, true},
	TMachineRemove: {ClientToServer, true}, TAudit: {ClientToServer, true},
	TUserAdd:           {ClientToServer, true},
	TPermissionRequest: {ClientToServer | ServerToClient, true}, TPermissionVerdict: {ClientToServer | ServerToClient, true},
	TPermissionList: {ClientToServer, true}, TPermissionWithdraw: {ClientToServer, true}, TApproverAdd: {ClientToServer, true}, TApproverRemove: {ClientToServer, true},
	TEnrollLink: {ClientToServer, true},

	TPong: {ServerToClient, false}, TJoined: {ServerToClient, false}, TAck: {ServerToClient, false},
	TPresence: {ServerToClient, false}, TChannelList: {ServerToClient, false},
	TMachineList: {ServerToClient, false}, TUserList: {ServerToClient, false},
	TInviteToken: {ServerToClient, false}, TInvites: {ServerToClient, false},
	THistory: {ServerToClient, false}, TAuditEvents: {ServerToClient, false}, TError: {ServerToClient, false},
	TUnsubscribed: {ServerToClient, false}, TRenamed: {ServerToClient, false},
	TPermissions: {ServerToClient, false}, TPermissionResolved: {ServerToClient, false},
	TEnrollToken: {ServerToClient, false},
}

// Types returns every frame type, for documentation tests.
func Types() []string {
	out := make([]string, 0, len(kinds))
	for t := range kinds {
		out = append(out, t)
	}
	return out
}

// KnownType reports whether t is a frame type of this version.
func KnownType(t string) bool { _, ok := kinds[t]; return ok }

// SentBy reports whether a frame of type t may be sent in direction d.
func SentBy(t string, d Direction) bool { return kinds[t].dir&d != 0 }

// IsRequest reports whether t is a client request that gets exactly one
// reply echoing its id.
func IsRequest(t string) bool { return kinds[t].request }

var errEmpty = errors.New("empty frame")

// Decode parses one JSON frame. It rejects invalid UTF-8, anything that is
// not a JSON object with a string "type", and unknown types. The returned
// error is an *Error with code malformed.
func Decode(b []byte) (*Frame, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, &Error{Code: CodeMalformed, Message: errEmpty.Error()}
	}
	if !utf8.Valid(b) {
		return nil, Errorf(CodeMalformed, "frame is not valid UTF-8")
	}
	if b[0] != '{' {
		return nil, Errorf(CodeMalformed, "frame is not a JSON object")
	}
	if f, ok := decodeFast(b); ok {
		if !KnownType(f.Type) {
			return f, Errorf(CodeMalformed, "unknown frame type %q", truncate(f.Type, 40))
		}
		return f, nil
	}
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, Errorf(CodeMalformed, "invalid JSON: %s", jsonErrText(err))
	}
	if f.Type == "" {
		return nil, Errorf(CodeMalformed, "frame has no \"type\"")
	}
	if !KnownType(f.Type) {
		return &f, Errorf(CodeMalformed, "unknown frame type %q", truncate(f.Type, 40))
	}
	return &f, nil
}

// DecodeMessage parses a WebSocket message holding one or more frames
// separated by newlines. It stops at the first bad frame.
func DecodeMessage(b []byte) ([]*Frame, error) {
	return decodeLines(b, Decode)
}

// decodeLines decodes each non-blank line of b with decode, stopping at
// the first bad one.
func decodeLines(b []byte, decode func([]byte) (*Frame, error)) ([]*Frame, error) {
	var out []*Frame
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		f, err := decode(line)
		if err != nil {
			return out, err
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, &Error{Code: CodeMalformed, Message: errEmpty.Error()}
	}
	return out, nil
}

// Encode renders f as one line of JSON without a trailing newline.
func Encode(f *Frame) ([]byte, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode %s frame: %w", f.Type, err)
	}
	return b, nil
}

// MustEncode is Encode for frames built by this program, whose encoding
// cannot fail (all field types are plain data).
func MustEncode(f *Frame) []byte {
	b, err := Encode(f)
	if err != nil {
		// Unreachable: Frame holds only strings, numbers, bools and slices.
		return []byte(`{"type":"error","code":"internal","message":"encode failed"}`)
	}
	return b
}

func jsonErrText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at offset %d", se.Error(), se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	}
	return truncate(err.Error(), 120)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
