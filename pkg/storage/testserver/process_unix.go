//go:build unix

package testserver

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr {
	return withParentDeath(&syscall.SysProcAttr{Setpgid: true})
}

// signalGroup sends SIGTERM, or SIGKILL when hard, to the process group the
// server leads.
func signalGroup(p *os.Process, hard bool) {
	sig := syscall.SIGTERM
	if hard {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-p.Pid, sig)
}
