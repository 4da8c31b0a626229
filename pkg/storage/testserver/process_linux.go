package testserver

import "syscall"

// launches returns the ways to start a server, best first. Each server
// leads its own process group and is killed if the test binary dies. The
// first also gives it its own PID namespace, a shell being its first
// process: when that dies the kernel kills every other process in the
// namespace, so no worker a server forked (apache's keep accepting on the
// port) outlives a killed test. The second is for machines that refuse new
// namespaces.
func launches() []launch {
	return []launch{
		{attr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Cloneflags: syscall.CLONE_NEWPID}, viaInit: true},
		{attr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}},
	}
}
