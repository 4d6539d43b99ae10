//go:build unix

package server

import "syscall"

// umask sets the process umask and returns the previous one, so that the
// administration socket is created owner-only.
func umask(m int) int { return syscall.Umask(m) }
