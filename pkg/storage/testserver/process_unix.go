//go:build unix

package testserver

import (
	"os"
	"syscall"
)

// killGroup kills the process group the server leads.
func killGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGKILL) }
