// Package leakcheck fails a test binary whose goroutines outlive its
// tests: every goroutine has an owner that stops it, and a test that
// forgets to stop one shows up here rather than as a slow leak in
// production. Use it from TestMain:
//
//	func TestMain(m *testing.M) {
//		leakcheck.Main(m, 5*time.Second, "control.(*Conn).")
//	}
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the tests and exits with their code. If they passed, it
// waits up to wait for the goroutines whose stacks contain one of marks
// (function names, as runtime.Stack prints them) to end; if any remain,
// it prints their stacks and exits 1.
func Main(m *testing.M, wait time.Duration, marks ...string) {
	code := m.Run()
	if code == 0 {
		if leaked := WaitGone(wait, marks...); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// WaitGone polls until no goroutine matches marks or wait has passed,
// and returns the stacks of those left ("" when none is).
func WaitGone(wait time.Duration, marks ...string) string {
	deadline := time.Now().Add(wait)
	for {
		s := Goroutines(marks...)
		if s == "" || time.Now().After(deadline) {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Goroutines returns the stacks of the goroutines that contain one of
// marks, other than the caller's ("" when none does).
func Goroutines(marks ...string) string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "conclave/leakcheck.Goroutines(") {
			continue // this one, and the TestMain it runs for
		}
		for _, m := range marks {
			if strings.Contains(g, m) {
				out = append(out, g)
				break
			}
		}
	}
	return strings.Join(out, "\n\n")
}
