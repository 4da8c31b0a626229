package testserver

import (
	"os"
	"syscall"
)

// The Debian servers do not run on Windows; these only keep the package
// building there for the in-process rclone servers.
func sysProcAttr() *syscall.SysProcAttr { return nil }

func signalGroup(p *os.Process, _ bool) { _ = p.Kill() }
