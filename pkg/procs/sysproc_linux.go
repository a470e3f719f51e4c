package procs

import "syscall"

// sysProcAttr makes children die with the demo, even if it is killed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
