package leakcheck

import (
	"strings"
	"testing"
	"time"
)

//go:noinline
func parked(release <-chan struct{}) { <-release }

func TestGoroutinesFindsALiveOneUntilItEnds(t *testing.T) {
	const mark = "leakcheck.parked("
	if s := Goroutines(mark); s != "" {
		t.Fatalf("found before it started:\n%s", s)
	}
	release, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		parked(release)
	}()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(Goroutines(mark), mark); {
		if time.Now().After(deadline) {
			t.Fatal("a parked goroutine was not found")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	<-done
	if s := WaitGone(5*time.Second, mark); s != "" {
		t.Fatalf("found after it ended:\n%s", s)
	}
}
