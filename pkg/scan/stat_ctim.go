//go:build linux || openbsd

package scan

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// openFlags keeps a file swapped for a FIFO after our lstat from blocking open.
const openFlags = syscall.O_NONBLOCK

func sysStat(fi os.FileInfo, st *fileStat) {
	switch s := fi.Sys().(type) {
	case *syscall.Stat_t:
		st.ino = uint64(s.Ino)
		st.dev = uint64(s.Dev)
		st.ctimeNs = s.Ctim.Nano()
	case *unix.Stat_t: // pkg/localfs's stats
		xunixStat(s, st)
	}
}
