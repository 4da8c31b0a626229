//go:build darwin || freebsd || netbsd || dragonfly

package scan

import (
	"os"
	"syscall"
)

// openFlags keeps a file swapped for a FIFO after our lstat from blocking open.
const openFlags = syscall.O_NONBLOCK

func sysStat(fi os.FileInfo, st *fileStat) {
	if s, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = uint64(s.Ino)
		st.dev = uint64(s.Dev)
		st.ctimeNs = s.Ctimespec.Nano()
	}
}
