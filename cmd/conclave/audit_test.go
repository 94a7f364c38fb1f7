package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	byteorder "encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/conclave/conclave/audit"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
)

var auditT0 = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

const auditToken = "tok123SECRETsecretSECRET"

func TestAuditEventLine(t *testing.T) {
	tests := []struct {
		name string
		e    audit.Event
		want string
	}{
		{"aligned", audit.Event{Time: auditT0, Actor: "alice/wa/cli-1", Type: "channel_created", Target: "channel ops"},
			"2026-11-24T09:00:00Z  alice/wa/cli-1        channel_created     channel ops\n"},
		{"long values push right", audit.Event{Time: auditT0.Add(1500 * time.Millisecond), Actor: "a-very-long-user/machine/session",
			Type: "visibility_changed", Target: "channel ops → private"},
			"2026-11-24T09:00:01Z  a-very-long-user/machine/session  visibility_changed  channel ops → private\n"},
		{"server", audit.Event{Time: auditT0, Actor: "server", Type: "banned", Target: "bob on ops"},
			"2026-11-24T09:00:00Z  server                banned              bob on ops\n"},
		{"control characters", audit.Event{Time: auditT0.In(time.FixedZone("X", 3600)), Actor: "server", Type: "x", Target: "a\nb\x1b[31m"},
			"2026-11-24T09:00:00Z  server                x                   a\uFFFDb\uFFFD[31m\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := auditEventLine(tt.e); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestAuditEventJSON(t *testing.T) {
	e := audit.Event{Seq: 3, Time: auditT0.Add(250 * time.Millisecond), Actor: "alice/wa/cli-1", Type: "invite_created",
		Target: "invite tok123… on ops", Data: json.RawMessage(`{"channel":"ops","token":"tok123…"}`)}
	var buf bytes.Buffer
	if err := auditWriteJSON(&buf, e); err != nil {
		t.Fatal(err)
	}
	want := `{"seq":3,"time":"2026-11-24T09:00:00.25Z","actor":"alice/wa/cli-1","type":"invite_created","target":"invite tok123… on ops","data":{"channel":"ops","token":"tok123…"}}` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestAuditCheckEventTypes(t *testing.T) {
	for _, ok := range []string{"", "user_registered", "acl_added, banned"} {
		if err := auditCheckTypes(ok); err != nil {
			t.Errorf("auditCheckTypes(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"nope", "acl_added,", "user_registered,nope"} {
		if err := auditCheckTypes(bad); err == nil || !strings.Contains(err.Error(), "known: user_registered") {
			t.Errorf("auditCheckTypes(%q) = %v, want an error listing the known types", bad, err)
		}
	}
}

func auditTestDump() projections.StateDump {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	uses, exp := int64(1), auditT0.Add(24*time.Hour).UnixMilli()
	return projections.StateDump{LastSeq: 8,
		Users: []projections.UserDump{
			{Name: "alice", CreatedAtMs: auditT0.UnixMilli(), Machines: []projections.MachineDump{
				{Name: "laptop", Pubkey: key, AddedAtMs: auditT0.UnixMilli()}}},
			{Name: "bob", CreatedAtMs: auditT0.UnixMilli(), Machines: []projections.MachineDump{}},
		},
		Channels: []projections.ChannelDump{{ID: 3, Name: "ops", Visibility: "private", CreatedBy: "alice",
			CreatedAtMs: auditT0.Add(2 * time.Minute).UnixMilli(), ACL: []string{"alice", "bob"}, Bans: []string{"carol"},
			Invites: []projections.InviteDump{
				{Token: "tok123…", Uses: &uses, ExpiresAtMs: &exp, CreatedBy: "alice"},
				{Token: "inv456…", CreatedBy: "alice"},
			}},
			{ID: 5, Name: "dev", Visibility: "public", CreatedBy: "bob", CreatedAtMs: auditT0.UnixMilli(),
				ACL: []string{"bob"}, Bans: []string{}, Invites: []projections.InviteDump{}},
		},
	}
}

func TestAuditStateText(t *testing.T) {
	var buf bytes.Buffer
	auditWriteState(&buf, auditTestDump(), auditT0.Add(time.Hour), 8)
	want := `state at 2026-11-24T10:00:00Z (after event seq 8)
users (2)
  alice  since 2026-11-24T09:00:00Z
    laptop  SHA256:tAXFyTXI8xtDaujAEcwJslAYc9/6FKcUkd2Lw0xDhPo  since 2026-11-24T09:00:00Z
  bob  since 2026-11-24T09:00:00Z
channels (2)
  ops  private  created by alice at 2026-11-24T09:02:00Z
    acl      alice, bob
    bans     carol
    invite   tok123…  uses 1  expires 2026-11-25T09:00:00Z  by alice
    invite   inv456…  unlimited uses  never expires  by alice
  dev  public  created by bob at 2026-11-24T09:00:00Z
    acl      bob
`
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	buf.Reset()
	auditWriteState(&buf, projections.StateDump{}, auditT0, 0)
	if got, want := buf.String(), "state at 2026-11-24T09:00:00Z (no events yet)\nusers (0)\nchannels (0)\n"; got != want {
		t.Errorf("empty state: got %q, want %q", got, want)
	}
}

func TestAuditStateJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := auditWriteJSON(&buf, auditStateView(auditTestDump(), auditT0.Add(time.Hour), 8)); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["at"] != "2026-11-24T10:00:00Z" || got["seq"] != 8.0 {
		t.Errorf("at, seq: got %v, %v", got["at"], got["seq"])
	}
	m := got["users"].([]any)[0].(map[string]any)["machines"].([]any)[0].(map[string]any)
	if m["fingerprint"] != "SHA256:tAXFyTXI8xtDaujAEcwJslAYc9/6FKcUkd2Lw0xDhPo" ||
		m["public_key"] != "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop" {
		t.Errorf("machine: got %v", m)
	}
	ch := got["channels"].([]any)[0].(map[string]any)
	inv := ch["invites"].([]any)
	if ch["visibility"] != "private" || len(inv) != 2 || inv[0].(map[string]any)["expires_at"] != "2026-11-25T09:00:00Z" ||
		inv[1].(map[string]any)["expires_at"] != nil || inv[1].(map[string]any)["uses"] != nil {
		t.Errorf("channel: got %v", ch)
	}
	if dev := got["channels"].([]any)[1].(map[string]any); dev["bans"] == nil || dev["invites"] == nil {
		t.Errorf("empty lists must be [], not null: %v", dev)
	}
	if bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
		t.Errorf("not one JSON document on one line: %s", buf.Bytes())
	}
}

func TestAuditVerifyText(t *testing.T) {
	var h [32]byte
	h[0], h[1] = 0x3f, 0x2a
	ok := &audit.VerifyReport{Records: 13, LastHash: h, Snapshots: []audit.SnapshotCheck{
		{File: "snap-00000000000000000006.zst", Seq: 6, Status: audit.SnapshotOK}},
		HistoryChecked: true, History: audit.HistoryCheck{Records: 120, First: 1, Last: 120}}
	var buf bytes.Buffer
	auditWriteVerify(&buf, ok)
	want := "events     13 records, checksums and hash chain intact (last 3f2a00000000…)\n" +
		"snapshot   snap-00000000000000000006.zst  seq 6  ok\n" +
		"history    120 records (seq 1-120), checksums intact\n" +
		"ok\n"
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	broken := &audit.VerifyReport{Records: 6,
		Break: &eventlog.SegmentError{Segment: "00000000000000000005", Seq: 7, Offset: 342, Err: eventlog.ErrChecksum},
		Snapshots: []audit.SnapshotCheck{{File: "snap-00000000000000000013.zst", Seq: 13, Status: audit.SnapshotUnchecked,
			Detail: "it lies beyond the break at seq 7"}},
		HistoryChecked: true, History: audit.HistoryCheck{Records: 9, First: 1, Last: 10, Damaged: []*eventlog.SegmentError{
			{Segment: "00000000000000000001", Seq: 4, Offset: 420, Err: eventlog.ErrChecksum}}}}
	buf.Reset()
	auditWriteVerify(&buf, broken)
	want = "events     BROKEN at segment events/00000000000000000005, seq 7 (6 records verified before it)\n" +
		"snapshot   snap-00000000000000000013.zst  seq 13  unchecked: it lies beyond the break at seq 7\n" +
		"history    DAMAGED: 9 records intact, 1 damaged (conclave repair --data-dir DIR sets them aside)\n" +
		"history    damaged history/00000000000000000001, seq 4 (byte 420): eventlog: checksum mismatch\n"
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	v := auditVerifyView(broken)
	if v.OK || v.Break == nil || v.Break.Seq != 7 || v.Break.Segment != "00000000000000000005" || v.Break.Offset != 342 ||
		!strings.Contains(v.Error, "seq 7") || v.LastHash == "" || v.Snapshots[0].Status != "unchecked" ||
		len(v.History.Damaged) != 1 || v.History.Damaged[0].Seq != 4 || v.History.Damaged[0].Segment != "00000000000000000001" {
		t.Errorf("auditVerifyView: got %+v", v)
	}
}

// auditCLI is a root command holding only audit, until main's CLI does.
type auditCLI struct {
	GlobalFlags
	Audit AuditCmd `cmd:"" help:"Admin history from a data dir: events, state at a time, verification."`
}

// runAudit parses and runs args as main's run does and returns stdout,
// stderr and the exit status.
func runAudit(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var cli auditCLI
	var out, errOut bytes.Buffer
	parser, err := kong.New(&cli, kong.Name("conclave"), kong.Writers(&out, &errOut),
		kong.Vars{"version": "test"}, kong.Exit(func(int) { t.Fatal("kong exited") }))
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		printError(&errOut, err)
		return out.String(), errOut.String(), 2
	}
	g := &Globals{Stdout: &out, Stderr: &errOut, Logger: newLogger(0, &errOut), JSON: cli.JSON, Version: "test"}
	kctx.BindTo(context.Background(), (*context.Context)(nil))
	if err := kctx.Run(g); err != nil {
		printError(&errOut, err)
		return out.String(), errOut.String(), 1
	}
	return out.String(), errOut.String(), 0
}

// auditDataDir writes a small data dir: two users, a private channel with
// an invite, a rename; with segments small enough to span several files.
func auditDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "server-id"), []byte("id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Open(filepath.Join(dir, "events"), &eventlog.Options{NoSync: true, SegmentSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	key := func(n byte) []byte {
		seed := make([]byte, ed25519.SeedSize)
		seed[0] = n
		return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	}
	evs := []struct {
		at    time.Duration
		actor string
		typ   string
		data  any
	}{
		{0, "alice/wa/cli-1", projections.EvUserRegistered, projections.RegisterData{User: "alice", Machine: "wa", Pubkey: key(1)}},
		{time.Minute, "bob/desk/cli-2", projections.EvUserRegistered, projections.RegisterData{User: "bob", Machine: "desk", Pubkey: key(2)}},
		{2 * time.Minute, "alice/wa/cli-1", projections.EvChannelCreated, projections.ChannelData{Channel: "ops", Visibility: "private", CreatedBy: "alice"}},
		{3 * time.Minute, "alice/wa/cli-1", projections.EvInviteCreated, projections.InviteData{Channel: "ops", Token: auditToken}},
		{time.Hour, "server", projections.EvChannelRenamed, projections.RenameData{Channel: "ops", NewName: "dev"}},
		{2 * time.Hour, "bob/desk/cli-2", projections.EvACLAdded, projections.MemberData{Channel: "dev", User: "bob"}},
	}
	for _, e := range evs {
		data, err := json.Marshal(e.data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append([]eventlog.Entry{{TimeMs: auditT0.Add(e.at).UnixMilli(), Actor: e.actor, Type: e.typ, Data: data}}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestAuditCommand(t *testing.T) {
	dir := auditDataDir(t)
	out, errOut, code := runAudit(t, "audit", "--data-dir", dir)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || errOut != "" || len(lines) != 6 {
		t.Fatalf("audit: exit %d, stderr %q, %d lines:\n%s", code, errOut, len(lines), out)
	}
	if want := "2026-11-24T09:03:00Z  alice/wa/cli-1        invite_created      invite tok123… on ops"; lines[3] != want {
		t.Errorf("line 4: got %q, want %q", lines[3], want)
	}
	if strings.Contains(out, "SECRET") {
		t.Error("a token is shown without --show-tokens")
	}

	out, _, code = runAudit(t, "audit", "--data-dir", dir, "--show-tokens", "--type", "invite_created")
	if code != 0 || !strings.Contains(out, auditToken) {
		t.Errorf("--show-tokens: exit %d, %q", code, out)
	}

	out, _, code = runAudit(t, "--json", "audit", "--channel", "ops", "--data-dir", dir)
	lines = strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 3 {
		t.Fatalf("--json --channel ops: exit %d, %d lines:\n%s", code, len(lines), out)
	}
	for _, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		var keys []string
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if got := strings.Join(keys, ","); got != "actor,data,seq,target,time,type" {
			t.Errorf("keys %s", got)
		}
	}

	out, _, code = runAudit(t, "audit", "--data-dir", dir, "--actor", "server", "--since", "2026-11-24T09:30:00Z", "--until", "2026-11-24T12:00:00Z")
	if code != 0 || !strings.HasSuffix(out, "channel_renamed     channel ops → dev\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("--actor server: exit %d, %q", code, out)
	}

	out, _, code = runAudit(t, "audit", "--data-dir", dir, "--at", "2026-11-24T09:30:00Z")
	if code != 0 || !strings.Contains(out, "(after event seq 4)") || !strings.Contains(out, "  ops  private") ||
		!strings.Contains(out, "invite   tok123…") {
		t.Errorf("--at: exit %d:\n%s", code, out)
	}
	out, _, code = runAudit(t, "--json", "audit", "--data-dir", dir, "--at", "2026-11-24", "--show-tokens")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"seq":0`) {
		t.Errorf("--json --at: exit %d:\n%s", code, out)
	}

	out, errOut, code = runAudit(t, "audit", "verify", "--data-dir", dir)
	if code != 0 || errOut != "" || !strings.HasPrefix(out, "events     6 records") || !strings.HasSuffix(out, "\nok\n") {
		t.Errorf("verify: exit %d, stderr %q:\n%s", code, errOut, out)
	}
}

func TestAuditCommandErrors(t *testing.T) {
	dir := auditDataDir(t)
	notDir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"not a data dir", []string{"audit", "--data-dir", notDir}, 1, "error: " + notDir + " is not a conclave data dir (no server-id file)\n"},
		{"verify not a data dir", []string{"audit", "verify", "--data-dir", notDir}, 1, "error: " + notDir + " is not a conclave data dir (no server-id file)\n"},
		{"bad time", []string{"audit", "--data-dir", dir, "--since", "yesterday"}, 1, `error: --since: invalid time "yesterday"`},
		{"at with a filter", []string{"audit", "--data-dir", dir, "--at", "1h", "--actor", "bob"}, 1, "error: --at prints the whole state"},
		{"unknown type", []string{"audit", "--data-dir", dir, "--type", "chanel_created"}, 1, `error: --type: unknown event type "chanel_created"`},
		{"no data dir", []string{"audit"}, 1, "error: audit needs --data-dir DIR"},
		{"filter before verify", []string{"audit", "--since", "1h", "verify", "--data-dir", dir}, 2, "error: flag --since applies to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CONCLAVE_DATA_DIR", "")
			os.Unsetenv("CONCLAVE_DATA_DIR")
			_, errOut, code := runAudit(t, tt.args...)
			if code != tt.code || !strings.HasPrefix(errOut, tt.want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("got exit %d, stderr %q; want %d, %q…", code, errOut, tt.code, tt.want)
			}
		})
	}
}

func TestAuditVerifyBreak(t *testing.T) {
	dir := auditDataDir(t)
	// Flip a byte in the payload of the first record of the second
	// segment.
	segs, err := filepath.Glob(filepath.Join(dir, "events", "0*"))
	if err != nil || len(segs) < 3 {
		t.Fatalf("want at least 3 segments, got %v, %v", segs, err)
	}
	sort.Strings(segs)
	b, err := os.ReadFile(segs[1])
	if err != nil {
		t.Fatal(err)
	}
	size, n := byteorder.Uvarint(b)
	b[n+int(size)/2] ^= 0xff
	if err := os.WriteFile(segs[1], b, 0o600); err != nil {
		t.Fatal(err)
	}
	seq := strings.TrimLeft(filepath.Base(segs[1]), "0")
	out, errOut, code := runAudit(t, "audit", "verify", "--data-dir", dir)
	want := "error: event log broken at segment events/" + filepath.Base(segs[1]) + ", seq " + seq + " "
	if code != 1 || !strings.HasPrefix(errOut, want) || !strings.Contains(out, "BROKEN") {
		t.Errorf("got exit %d, stderr %q, stdout %q; want 1 and %q…", code, errOut, out, want)
	}
	out, _, code = runAudit(t, "--json", "audit", "verify", "--data-dir", dir)
	var v auditVerify
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 1 || v.OK || v.Break == nil {
		t.Errorf("--json: exit %d, %v: %s", code, err, out)
	}
	_, errOut, code = runAudit(t, "audit", "--data-dir", dir)
	if code != 1 || !strings.Contains(errOut, "seq "+seq) {
		t.Errorf("listing a broken log: exit %d, stderr %q", code, errOut)
	}
}
