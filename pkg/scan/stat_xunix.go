//go:build linux || openbsd || darwin || freebsd || netbsd || dragonfly

package scan

import "golang.org/x/sys/unix"

// xunixStat fills st from a golang.org/x/sys/unix stat, the kind pkg/localfs
// returns: the same fields on every Unix.
func xunixStat(s *unix.Stat_t, st *fileStat) {
	st.ino = uint64(s.Ino)
	st.dev = uint64(s.Dev)
	st.ctimeNs = s.Ctim.Nano()
}
