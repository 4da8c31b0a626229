//go:build unix && !linux

package testserver

import "syscall"

func launches() []launch {
	return []launch{{attr: &syscall.SysProcAttr{Setpgid: true}}}
}
