//go:build !linux

package procs

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
