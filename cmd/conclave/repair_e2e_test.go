package main

import (
	"bytes"
	encbin "encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conclave/conclave/datadir"
	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
)

// flipInFrame flips one byte in the middle of the payload of the
// index-th frame (from 0) of the segment file path and returns the
// frame's bytes as they were.
func flipInFrame(t *testing.T, path string, index int) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for i := 0; ; i++ {
		size, n := encbin.Uvarint(b[off:])
		if n <= 0 || off+n+int(size) > len(b) {
			t.Fatalf("%s has no frame %d", path, index)
		}
		if i == index {
			frame := append([]byte(nil), b[off:off+n+int(size)]...)
			b[off+n+int(size)/2] ^= 0x20
			if err := os.WriteFile(path, b, 0o640); err != nil {
				t.Fatal(err)
			}
			return frame
		}
		off += n + int(size)
	}
}

// dataDirFiles returns every file of a data dir but LOCK, with its bytes.
func dataDirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == datadir.LockFile {
			return err
		}
		b, err := os.ReadFile(p)
		files[strings.TrimPrefix(p, dir)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func sameFiles(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (s *crashServer) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatal("conclave serve did not stop within 20s of SIGTERM")
	}
}

// TestRepairHistoryDamage flips one byte in the middle of a stored
// message, on the real binary: serve starts anyway and logs the damaged
// record, readers (read_since, tail --since) get every other message
// with the damaged seq a gap, /metrics counts it; audit verify names file
// and seq (exit 1); repair refuses while the server runs, its dry run
// changes nothing, --yes sets the record aside in the quarantine, after
// which verify is ok and the server serves the rest, seqs unchanged.
func TestRepairHistoryDamage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	addr, data := freeAddr(t), t.TempDir()
	url := "ws://" + addr
	srv := crashServe(t, addr, data)
	cfgA := filepath.Join(t.TempDir(), "A")
	a := []string{"CONCLAVE_CONFIG_DIR=" + cfgA}
	ok(t, a, "key")
	ok(t, a, "register", "alice", "--server", url, "--machine", "wa")
	ok(t, a, "channel", "create", "ops")
	for i := 0; i < 10; i++ {
		ok(t, a, "send", "--channel", "ops", fmt.Sprintf("message %d", i))
	}
	before := readHistory(t, cfgA, url, "ops")
	if len(before) != 10 {
		t.Fatalf("history holds %d messages, want 10", len(before))
	}
	srv.stop(t)

	segs, err := eventlog.ListSegments(filepath.Join(data, datadir.HistoryDir))
	if err != nil || len(segs) != 1 {
		t.Fatalf("history segments %v, %v", segs, err)
	}
	seg := segs[0]
	const k = 5 // the sixth message, in the middle of the file
	bad := seg.Index + k
	original := flipInFrame(t, seg.Path, k)

	srv = crashServe(t, addr, data)
	file := filepath.Join(datadir.HistoryDir, seg.Name)
	if !strings.Contains(srv.logText(), `"msg":"damaged history record; readers get a gap there (conclave repair sets it aside)","file":"`+file+`","seq":`+fmt.Sprint(bad)) {
		t.Fatalf("the server's log does not name the damaged record %s seq %d:\n%s", file, bad, srv.logText())
	}
	got := readHistory(t, cfgA, url, "ops")
	if _, ok := got[bad]; ok || len(got) != 9 {
		t.Fatalf("read_since: %d messages %v, want the 9 but seq %d", len(got), got, bad)
	}
	for seq, body := range before {
		if seq != bad && got[seq] != body {
			t.Fatalf("seq %d = %q, want %q", seq, got[seq], body)
		}
	}
	tail := start(t, a, false, "tail", "--channel", "ops", "--since", "1h")
	for i := 0; i < 10; i++ {
		if i == k {
			continue
		}
		if l := tail.next(); !strings.HasSuffix(l, fmt.Sprintf(": message %d", i)) {
			t.Fatalf("tail --since line %q, want message %d (message %d is damaged)", l, i, k)
		}
	}
	tail.interrupt()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^conclave_history_damaged_records_total 1$`).Match(page) {
		t.Fatalf("/metrics does not count one damaged history record:\n%s", page)
	}

	// audit verify names the file and seq, beside the live server.
	r := fails(t, 1, fmt.Sprintf("history record damaged at %s, seq %d (byte ", file, bad), nil, "audit", "verify", "--data-dir", data)
	if !strings.Contains(r.stdout, fmt.Sprintf("history    damaged %s, seq %d", file, bad)) {
		t.Fatalf("audit verify printed:\n%s", r.stdout)
	}
	// repair refuses while the server holds the data dir.
	fails(t, 1, "is in use by", nil, "repair", "--data-dir", data)
	srv.stop(t)

	// The dry run lists the damage and changes nothing.
	files := dataDirFiles(t, data)
	out := ok(t, nil, "repair", "--data-dir", data)
	if !strings.Contains(out, fmt.Sprintf("%s, seq %d (byte ", file, bad)) || !strings.Contains(out, "dry run: nothing was changed") ||
		!strings.Contains(out, "events/: intact") {
		t.Fatalf("repair dry run printed:\n%s", out)
	}
	if !sameFiles(files, dataDirFiles(t, data)) {
		t.Fatal("the dry run changed the data dir")
	}
	// The same plan as JSON, and the dry run still changes nothing.
	plan := repairJSONOf(t, ok(t, nil, "repair", "--data-dir", data, "--json"))
	if plan.Intact || plan.Applied || plan.Events != nil || len(plan.History) != 1 ||
		plan.History[0].Segment != seg.Name || plan.History[0].First != bad || plan.History[0].Last != bad ||
		plan.History[0].Damage == "" || plan.History[0].Offset <= 0 {
		t.Fatalf("repair --json dry run: %+v", plan)
	}
	if !sameFiles(files, dataDirFiles(t, data)) {
		t.Fatal("the --json dry run changed the data dir")
	}
	done := repairJSONOf(t, ok(t, nil, "repair", "--data-dir", data, "--yes", "--json"))
	if !done.Applied || done.Quarantine == "" || len(done.History) != 1 || done.History[0].First != bad {
		t.Fatalf("repair --yes --json: %+v", done)
	}
	kept, err := os.ReadFile(filepath.Join(done.Quarantine, datadir.HistoryDir, fmt.Sprintf("%s.seq-%d", seg.Name, bad)))
	if err != nil {
		t.Fatalf("the damaged record is not in the quarantine: %v", err)
	}
	if flipped := flipBack(kept); !bytes.Equal(flipped, original) {
		t.Fatalf("the quarantine holds %q, want the damaged record's bytes", kept)
	}
	if report, err := os.ReadFile(filepath.Join(done.Quarantine, "REPAIR.txt")); err != nil || !strings.Contains(string(report), fmt.Sprintf("seq %d", bad)) {
		t.Fatalf("REPAIR.txt: %q, %v", report, err)
	}
	if out := ok(t, nil, "audit", "verify", "--data-dir", data); !strings.HasSuffix(out, "\nok\n") {
		t.Fatalf("audit verify after the repair:\n%s", out)
	}
	if out := ok(t, nil, "repair", "--data-dir", data); !strings.HasPrefix(out, "✓ nothing to repair") {
		t.Fatalf("a second repair printed:\n%s", out)
	}
	if again := repairJSONOf(t, ok(t, nil, "repair", "--data-dir", data, "--json")); !again.Intact || again.Applied || len(again.History) != 0 || again.Events != nil {
		t.Fatalf("a second repair --json: %+v", again)
	}

	srv = crashServe(t, addr, data)
	if strings.Contains(srv.logText(), "damaged history record") {
		t.Fatalf("the repaired history still logs damage:\n%s", srv.logText())
	}
	after := readHistory(t, cfgA, url, "ops")
	if _, ok := after[bad]; ok || len(after) != 9 {
		t.Fatalf("after the repair: %d messages, want the 9 others", len(after))
	}
	for seq, body := range got {
		if after[seq] != body {
			t.Fatalf("after the repair seq %d = %q, want %q", seq, after[seq], body)
		}
	}
	ok(t, a, "send", "--channel", "ops", "after the repair")
	if h := readHistory(t, cfgA, url, "ops"); len(h) != 10 {
		t.Fatalf("a post after the repair: %d messages, want 10", len(h))
	}
}

// flipBack undoes flipInFrame's flip on a copy of a frame.
func flipBack(frame []byte) []byte {
	b := append([]byte(nil), frame...)
	size, n := encbin.Uvarint(b)
	if n > 0 && n+int(size) <= len(b) {
		b[n+int(size)/2] ^= 0x20
	}
	return b
}

// TestRepairEventsDamage damages an event in events/ after the newest
// snapshot, on the real binary: serve refuses naming segment and seq and
// pointing to conclave repair; the dry run lists every event a cut would
// set aside, the ban marked SECURITY, and changes nothing; --yes cuts the
// log, sets aside the history of the channel the cut removes, and serve
// starts with the state before the damage (the ban undone, the later
// channel gone, the earlier messages kept).
func TestRepairEventsDamage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	addr, data := freeAddr(t), t.TempDir()
	url := "ws://" + addr
	srv := crashServe(t, addr, data)
	tmp := t.TempDir()
	cfgA := filepath.Join(tmp, "A")
	a := []string{"CONCLAVE_CONFIG_DIR=" + cfgA}
	b := []string{"CONCLAVE_CONFIG_DIR=" + filepath.Join(tmp, "B")}
	ok(t, a, "key")
	ok(t, b, "key")
	ok(t, a, "register", "alice", "--server", url, "--machine", "wa")
	ok(t, b, "register", "bob", "--server", url, "--machine", "wb")
	ok(t, a, "channel", "create", "ops")
	ok(t, b, "join", "ops")
	ok(t, a, "send", "--channel", "ops", "kept")
	srv.stop(t) // a snapshot of everything so far

	srv = crashServe(t, addr, data)
	ok(t, a, "channel", "create", "later")
	ok(t, a, "ban", "bob", "--channel", "ops")
	ok(t, a, "channel", "create", "after")
	ok(t, a, "send", "--channel", "after", "in a channel the cut removes")
	ok(t, a, "send", "--channel", "ops", "kept too")
	srv.kill9() // no snapshot covers the new events

	// Damage the channel_created of "later".
	var bad uint64
	var types []string
	rd, err := eventlog.OpenReader(filepath.Join(data, datadir.EventsDir))
	if err != nil {
		t.Fatal(err)
	}
	err = rd.Scan(func(rec eventlog.Record) error {
		if rec.Type == projections.EvChannelCreated && projections.DecodeFields(rec.Data).Channel == "later" {
			bad = rec.Seq
		}
		if bad != 0 {
			types = append(types, rec.Type)
		}
		return nil
	})
	if err != nil || bad == 0 {
		t.Fatalf("scan: %v, seq of later's creation %d", err, bad)
	}
	segs, _ := eventlog.ListSegments(filepath.Join(data, datadir.EventsDir))
	seg := segs[len(segs)-1]
	flipInFrame(t, seg.Path, int(bad-seg.Index))

	r := fails(t, 1, fmt.Sprintf("segment %s, seq %d", seg.Name, bad), nil, "serve", "--bind", addr, "--data-dir", data)
	if !strings.Contains(r.stderr, "conclave repair --data-dir "+data) {
		t.Fatalf("serve's refusal does not point to conclave repair: %s", r.stderr)
	}

	files := dataDirFiles(t, data)
	out := ok(t, nil, "repair", "--data-dir", data)
	want := []string{
		fmt.Sprintf("events/: damaged at events/%s, seq %d", seg.Name, bad),
		fmt.Sprintf("keeps seq 1-%d and sets aside, and UNDOES, these %d events (1 of them SECURITY", bad-1, len(types)),
		fmt.Sprintf("seq %d  DAMAGED: type, actor and time unknown", bad),
		"banned  user=bob channel=ops  SECURITY: the cut undoes it",
		"channel_created  channel=after",
		"messages of channels created by the events cut below",
		"dry run: nothing was changed",
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("repair dry run does not say %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Fatalf("ANSI escapes on a stdout that is not a terminal:\n%s", out)
	}
	if !regexp.MustCompile(`seq \d+  \d{4}-\d\d-\d\dT[0-9:.]+Z  alice/wa/cli-\d+  banned`).MatchString(out) {
		t.Fatalf("the ban's line lacks its time and actor:\n%s", out)
	}
	plan := repairJSONOf(t, ok(t, nil, "repair", "--data-dir", data, "--json"))
	if plan.Events == nil || plan.Events.Seq != bad || plan.Events.Segment != seg.Name || len(plan.Events.SetAside) != len(types) ||
		plan.Events.SetAside[0].Seq != bad || plan.Events.SetAside[0].Damaged == "" || plan.Applied || len(plan.History) != 1 {
		t.Fatalf("repair --json dry run: %+v", plan)
	}
	security := 0
	for _, e := range plan.Events.SetAside {
		if e.Security {
			security++
			if e.Type != projections.EvBanned || !strings.HasPrefix(e.Actor, "alice/wa/") || e.Time == "" || !strings.Contains(e.Detail, "user=bob") {
				t.Fatalf("repair --json: the security event is %+v, want alice's ban of bob", e)
			}
		}
	}
	if security != 1 {
		t.Fatalf("repair --json marks %d events security, want 1 (the ban): %+v", security, plan.Events.SetAside)
	}
	if !sameFiles(files, dataDirFiles(t, data)) {
		t.Fatal("the dry run changed the data dir")
	}

	out = ok(t, nil, "repair", "--data-dir", data, "--yes")
	m := regexp.MustCompile(fmt.Sprintf(`(?m)^✓ repaired: 1 history records and %d events set aside in (\S+) `, len(types))).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("repair --yes printed:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(m[1], datadir.EventsDir, fmt.Sprintf("%s.from-seq-%d", seg.Name, bad))); err != nil {
		t.Fatalf("the cut events are not in the quarantine: %v", err)
	}
	if out := ok(t, nil, "audit", "verify", "--data-dir", data); !strings.HasSuffix(out, "\nok\n") {
		t.Fatalf("audit verify after the cut:\n%s", out)
	}

	srv = crashServe(t, addr, data)
	if out := ok(t, a, "--json", "channel", "list"); strings.TrimSpace(out) != `[{"name":"ops","visibility":"public","member":true}]` {
		t.Fatalf("channels after the cut: %s", out)
	}
	if out := ok(t, a, "bans", "--channel", "ops", "--json"); strings.Contains(out, "bob") {
		t.Fatalf("the ban survived the cut: %s", out)
	}
	h := readHistory(t, cfgA, url, "ops")
	var bodies []string
	for _, body := range h {
		bodies = append(bodies, body)
	}
	if len(h) != 2 {
		t.Fatalf("#ops after the cut: %v, want kept and kept too", bodies)
	}
	// The server goes on from the cut: a new channel gets a fresh id and
	// none of the set-aside messages.
	ok(t, a, "channel", "create", "fresh")
	if h := readHistory(t, cfgA, url, "fresh"); len(h) != 0 {
		t.Fatalf("a channel created after the cut shows %v", h)
	}
	srv.stop(t)
}

// repairJSONOf decodes conclave repair --json's document.
func repairJSONOf(t *testing.T, out string) repairJSON {
	t.Helper()
	var v repairJSON
	if err := json.Unmarshal([]byte(out), &v); err != nil || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("repair --json printed %q, not one JSON document: %v", out, err)
	}
	return v
}
