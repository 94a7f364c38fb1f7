package control

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if any Conn goroutine outlives the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitNoConnGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// connGoroutines returns the stacks of goroutines running a Conn's code.
func connGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "control.(*Conn).") || strings.Contains(g, "control.newConn") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

func waitNoConnGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		s := connGoroutines()
		if s == "" || time.Now().After(deadline) {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
}
