package control

import (
	"testing"
	"time"

	"github.com/conclave/conclave/leakcheck"
)

// connMarks picks the goroutines of Conns, Sessions and Subscriptions
// out of a stack dump.
var connMarks = []string{"control.(*Conn).", "control.newConn", "control.(*Session).", "control.Subscribe"}

// TestMain fails the run if any of their goroutines outlives the tests.
func TestMain(m *testing.M) {
	leakcheck.Main(m, 5*time.Second, connMarks...)
}
