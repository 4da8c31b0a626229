//go:build unix && !linux

package testserver

import "syscall"

func procAttrs() []*syscall.SysProcAttr {
	return []*syscall.SysProcAttr{{Setpgid: true}}
}
