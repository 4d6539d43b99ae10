//go:build !linux

package main

import "syscall"

// childAttr is nil where the kernel cannot tie a child's life to the
// test's: the test's clean-ups stop its processes.
func childAttr() *syscall.SysProcAttr { return nil }
