//go:build unix && !linux

package testserver

import "syscall"

func withParentDeath(a *syscall.SysProcAttr) *syscall.SysProcAttr { return a }
