package testserver

import (
	"os"
	"syscall"
)

// The Debian servers do not run on Windows; these only keep the package
// building there for the in-process rclone servers.
func procAttrs() []*syscall.SysProcAttr { return []*syscall.SysProcAttr{nil} }

func killGroup(p *os.Process) { _ = p.Kill() }
