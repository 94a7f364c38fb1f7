package bench

import "syscall"

// childAttr makes a child server die with the bench.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
