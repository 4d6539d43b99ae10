package main

import "syscall"

// childAttr makes a process a test starts die with the test: the kernel
// kills it when the test process goes, even by SIGKILL or a timeout.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
