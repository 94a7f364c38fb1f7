package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// tailMessages reads n messages of a `--json tail` and returns their
// bodies and seqs.
func tailMessages(t *testing.T, tail *proc, n int) (bodies []string, seqs []uint64) {
	t.Helper()
	for range n {
		var l tailLine
		line := tail.next()
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.Body == nil {
			t.Fatalf("tail printed %q (%v)", line, err)
		}
		bodies = append(bodies, *l.Body)
		seqs = append(seqs, l.Seq)
	}
	return bodies, seqs
}

// TestSendLines: `send --lines -` posts each non-empty line of stdin as
// its own message, pipelined, and the channel holds them in input order
// with increasing seqs; --lines also splits an argument; a refusal names
// its line.
func TestSendLines(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	url, _, _ := startServer(t, "--rate-limit", "0", "--max-body", "1000")
	a := []string{"CONCLAVE_CONFIG_DIR=" + t.TempDir()}
	b := []string{"CONCLAVE_CONFIG_DIR=" + t.TempDir()}
	ok(t, a, "register", "alice", "--server", url, "--machine", "wa")
	ok(t, b, "register", "bob", "--server", url, "--machine", "wb")
	ok(t, a, "channel", "create", "ops")
	tail := start(t, b, false, "--json", "tail", "--channel", "ops", "--as", "bt")
	tail.expectStderr(`^tailing #ops`)

	var in strings.Builder
	var want []string
	for i := range 300 {
		line := fmt.Sprintf("line %d", i)
		switch i % 3 {
		case 1:
			line = fmt.Sprintf("func f%d() { if a < b && c > d { return \"x\\y\" } }\t// ✓ 🚀", i)
		case 2:
			in.WriteString("\n  \r\n") // empty lines are skipped
		}
		want = append(want, line)
		in.WriteString(line + "\r\n"[i%2:])
	}
	r := cliStdin(t, a, fileWith(t, in.String()), "--json", "send", "--channel", "ops", "--lines", "-")
	if r.code != 0 {
		t.Fatalf("send --lines: exit %d, %q", r.code, r.stderr)
	}
	var out struct {
		Channel string   `json:"channel"`
		Seqs    []uint64 `json:"seqs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Channel != "ops" || len(out.Seqs) != len(want) {
		t.Fatalf("send --lines --json printed %q (%v), want %d seqs", r.stdout, err, len(want))
	}
	bodies, seqs := tailMessages(t, tail, len(want))
	for i := range want {
		if bodies[i] != want[i] || seqs[i] != out.Seqs[i] || (i > 0 && seqs[i] <= seqs[i-1]) {
			t.Fatalf("message %d on the channel: %q seq %d (printed seq %d); want %q, seqs increasing", i, bodies[i], seqs[i], out.Seqs[i], want[i])
		}
	}

	if out := ok(t, a, "send", "--channel", "ops", "--lines", "one\n\ntwo"); out != "✓ sent 2 messages to ops\n" {
		t.Errorf("send --lines TEXT printed %q", out)
	}
	if bodies, _ := tailMessages(t, tail, 2); bodies[0] != "one" || bodies[1] != "two" {
		t.Errorf("tail got %q", bodies)
	}
	if r := cliStdin(t, a, fileWith(t, "\n \n"), "send", "--channel", "ops", "--lines", "-"); r.code != 1 || r.stderr != "error: no lines to send: every line is empty\n" {
		t.Errorf("empty lines: exit %d, stderr %q", r.code, r.stderr)
	}
	// A line over the server's body cap is refused, by number; the
	// lines before it are posted.
	r = cliStdin(t, a, fileWith(t, "first\nsecond\n"+strings.Repeat("x", 1001)+"\nfourth\n"), "send", "--channel", "ops", "--lines", "-")
	if r.code != 1 || r.stderr != "error: line 3 is 1001 bytes, more than the server takes in a message (1000)\n" {
		t.Errorf("an oversized line: exit %d, stderr %q", r.code, r.stderr)
	}
	if bodies, _ := tailMessages(t, tail, 2); bodies[0] != "first" || bodies[1] != "second" {
		t.Errorf("tail got %q", bodies)
	}
	ok(t, a, "send", "--channel", "ops", "last")
	if bodies, _ := tailMessages(t, tail, 1); bodies[0] != "last" {
		t.Errorf("after the refusal tail got %q, want last", bodies)
	}
}

// TestSendLinesRateLimit: lines beyond the server's rate limit are
// retried until it lets them through, in order.
func TestSendLinesRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	url, _, _ := startServer(t, "--rate-limit", "4") // burst 8
	a := []string{"CONCLAVE_CONFIG_DIR=" + t.TempDir()}
	ok(t, a, "register", "alice", "--server", url, "--machine", "wa")
	ok(t, a, "channel", "create", "ops")
	tail := start(t, a, false, "--json", "tail", "--channel", "ops", "--as", "t")
	tail.expectStderr(`^tailing #ops`)
	var want []string
	for i := range 14 {
		want = append(want, fmt.Sprint("m", i))
	}
	// One post at a time: a refused post has none behind it that could
	// get through before it.
	r := cliStdin(t, a, fileWith(t, strings.Join(want, "\n")), "send", "--channel", "ops", "--lines", "--window", "1", "-")
	if r.code != 0 || r.stdout != "✓ sent 14 messages to ops\n" {
		t.Fatalf("send --lines over the rate limit: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if bodies, _ := tailMessages(t, tail, len(want)); strings.Join(bodies, " ") != strings.Join(want, " ") {
		t.Errorf("the channel holds %q, want %q", bodies, want)
	}
}
