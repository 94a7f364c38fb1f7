package main

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conclave/conclave/eventlog"
	"github.com/conclave/conclave/projections"
)

// TestMeasureAuditAt measures `conclave audit --at` over a 200 000-event
// log: wall time and peak memory (from /usr/bin/time -v when installed).
// It runs only with CONCLAVE_MEASURE=1.
func TestMeasureAuditAt(t *testing.T) {
	if os.Getenv("CONCLAVE_MEASURE") == "" {
		t.Skip("set CONCLAVE_MEASURE=1 to measure")
	}
	dir := t.TempDir()
	const n = 200_000
	start := time.Now()
	if err := os.WriteFile(filepath.Join(dir, "server-id"), []byte("measure\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := eventlog.Open(filepath.Join(dir, "events"), &eventlog.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	// 10 000 users, then channels and ACL churn: about the shape of a busy server.
	const users = 10_000
	var batch []eventlog.Entry
	add := func(typ string, v any) {
		b, _ := json.Marshal(v)
		batch = append(batch, eventlog.Entry{TimeMs: start.UnixMilli(), Actor: "server", Type: typ, Data: b})
		if len(batch) == 1000 {
			if _, err := log.Append(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	for i := 0; i < users; i++ {
		pub, _, _ := ed25519.GenerateKey(nil)
		add(projections.EvUserRegistered, projections.RegisterData{User: fmt.Sprint("u", i), Machine: "m", Pubkey: pub})
	}
	for i := users; i < n; i++ {
		switch k := i % 4; {
		case k == 0 || i < 2*users:
			add(projections.EvChannelCreated, projections.ChannelData{Channel: fmt.Sprint("c", i), Visibility: "public", CreatedBy: fmt.Sprint("u", i%users)})
		case k == 1:
			add(projections.EvACLAdded, projections.MemberData{Channel: fmt.Sprint("c", i-1), User: fmt.Sprint("u", (i*7)%users)})
		case k == 2:
			add(projections.EvBanned, projections.MemberData{Channel: fmt.Sprint("c", i-2), User: fmt.Sprint("u", (i*13)%users)})
		default:
			add(projections.EvUnbanned, projections.MemberData{Channel: fmt.Sprint("c", i-3), User: fmt.Sprint("u", (i*13)%users)})
		}
	}
	if len(batch) > 0 {
		if _, err := log.Append(batch); err != nil {
			t.Fatal(err)
		}
	}
	log.Close()
	t.Logf("built %d events in %v", n, time.Since(start))

	args := []string{"audit", "--data-dir", dir, "--at", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}
	cmdline := append([]string{binary}, args...)
	if _, err := exec.LookPath("/usr/bin/time"); err == nil {
		cmdline = append([]string{"/usr/bin/time", "-v"}, cmdline...)
	}
	for run := 0; run < 3; run++ {
		c := exec.Command(cmdline[0], cmdline[1:]...)
		var stderr strings.Builder
		c.Stderr = &stderr
		t0 := time.Now()
		out, err := c.Output()
		el := time.Since(t0)
		if err != nil {
			t.Fatalf("audit --at: %v\n%s", err, stderr.String())
		}
		rss := ""
		for _, l := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(l, "Maximum resident set size") {
				rss = strings.TrimSpace(l)
			}
		}
		t.Logf("run %d: audit --at over %d events: %v, %d bytes of output; %s", run, n, el.Round(time.Millisecond), len(out), rss)
	}
}
