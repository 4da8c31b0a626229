package testserver

import "syscall"

// procAttrs returns the ways to start a server, best first. Each server
// leads its own process group and is killed if the test binary dies. The
// first also gives it its own PID namespace: when a namespace's first
// process dies the kernel kills every other process in it, so no worker a
// server forked (apache's keep accepting on the port) outlives a killed
// test. The second is for machines that refuse new namespaces.
func procAttrs() []*syscall.SysProcAttr {
	return []*syscall.SysProcAttr{
		{Setpgid: true, Pdeathsig: syscall.SIGKILL, Cloneflags: syscall.CLONE_NEWPID},
		{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
}
