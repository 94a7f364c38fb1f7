package control

import (
	"testing"
	"time"

	"github.com/conclave/conclave/leakcheck"
)

// connMarks picks a Conn's goroutines out of a stack dump.
var connMarks = []string{"control.(*Conn).", "control.newConn"}

// TestMain fails the run if any Conn goroutine outlives the tests.
func TestMain(m *testing.M) {
	leakcheck.Main(m, 5*time.Second, connMarks...)
}
