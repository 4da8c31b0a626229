package localfs

import (
	"io/fs"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The Sys of a FileInfo is a *syscall.Stat_t from package os, or a *unix.Stat_t from statAt.

func fileInode(fi fs.FileInfo) uint64 {
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t:
		return st.Ino
	case *unix.Stat_t:
		return st.Ino
	}
	return 0
}

func fileDevice(fi fs.FileInfo) (uint64, bool) {
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t:
		return uint64(uint32(st.Dev)), true
	case *unix.Stat_t:
		return uint64(uint32(st.Dev)), true
	}
	return 0, false
}

// changeTime is when the inode last changed (ctime): unlike mtime, nobody can set it back.
func changeTime(fi fs.FileInfo) time.Time {
	switch st := fi.Sys().(type) {
	case *syscall.Stat_t:
		return time.Unix(st.Ctimespec.Unix())
	case *unix.Stat_t:
		return time.Unix(st.Ctim.Unix())
	}
	return fi.ModTime()
}
