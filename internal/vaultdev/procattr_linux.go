package vaultdev

import "syscall"

// procAttr makes the Vault dev server die with the test binary, even when
// the test binary is killed.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
