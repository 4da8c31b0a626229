package testserver

import "syscall"

// withParentDeath has Linux kill the server if the test binary dies without
// cleaning up, so no server outlives a crashed test run.
func withParentDeath(a *syscall.SysProcAttr) *syscall.SysProcAttr {
	a.Pdeathsig = syscall.SIGKILL
	return a
}
