//go:build !linux

package redisstore_test

import "syscall"

// childProcAttr returns nil: outside Linux the started servers are stopped
// by the test's cleanups only.
func childProcAttr() *syscall.SysProcAttr { return nil }
