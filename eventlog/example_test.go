package eventlog_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/conclave/conclave/eventlog"
)

func Example() {
	dir, err := os.MkdirTemp("", "eventlog-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	l, err := eventlog.Open(filepath.Join(dir, "events"), nil)
	if err != nil {
		log.Fatal(err)
	}
	recs, err := l.Append([]eventlog.Entry{
		{TimeMs: 1, Actor: "server", Type: "user_registered", Data: []byte(`{"user":"alice"}`)},
		{TimeMs: 2, Actor: "alice/laptop/s1", Type: "channel_created", Data: []byte(`{"channel":"general"}`)},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("appended up to seq", recs[len(recs)-1].Seq)

	// Snapshot the state as of seq 1, then restart from it.
	if err := eventlog.WriteSnapshot(filepath.Join(dir, "snapshots"),
		eventlog.Snapshot{Schema: 1, Seq: 1, Hash: recs[0].Hash, Data: []byte("state")}, 3); err != nil {
		log.Fatal(err)
	}
	snap, err := eventlog.LoadNewestSnapshot(filepath.Join(dir, "snapshots"), 1, nil)
	if err != nil {
		log.Fatal(err)
	}
	err = l.Replay(snap.Seq, snap.Hash, func(r eventlog.Record) error {
		fmt.Printf("replay seq %d %s by %s: %s\n", r.Seq, r.Type, r.Actor, r.Data)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}

	// A read-only check of the whole log, as `conclave audit verify` does.
	r, err := eventlog.OpenReader(filepath.Join(dir, "events"))
	if err != nil {
		log.Fatal(err)
	}
	n, last, err := r.Verify()
	fmt.Println("verified", n, "records:", err == nil, last == recs[1].Hash)
	// Output:
	// appended up to seq 2
	// replay seq 2 channel_created by alice/laptop/s1: {"channel":"general"}
	// verified 2 records: true true
}
