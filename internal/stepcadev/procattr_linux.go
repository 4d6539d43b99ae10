package stepcadev

import "syscall"

// procAttr makes step-ca die with the test binary, even when
// the test binary is killed.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
