package server

import (
	"testing"
	"time"

	"github.com/conclave/conclave/leakcheck"
)

// TestMain fails the run if any goroutine of this package outlives the
// tests: every session, writeLoop, commitCommands, reaper and history
// goroutine has an owner that stops it (Shutdown, Close).
func TestMain(m *testing.M) {
	leakcheck.Main(m, 10*time.Second, "conclave/server.")
}
