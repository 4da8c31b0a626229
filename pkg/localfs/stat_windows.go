package localfs

import (
	"io/fs"
	"syscall"
	"time"
)

// fileInode is 0 on Windows: os.Lstat does not report the file index, so Expect checks
// fall back to size and mtime.
func fileInode(fs.FileInfo) uint64 { return 0 }

func fileDevice(fs.FileInfo) (uint64, bool) { return 0, false }

// changeTime is the creation time: a temp file's mtime is set to the incoming file's, so it
// says nothing about when the temp was made.
func changeTime(fi fs.FileInfo) time.Time {
	if d, ok := fi.Sys().(*syscall.Win32FileAttributeData); ok {
		return time.Unix(0, d.CreationTime.Nanoseconds())
	}
	return fi.ModTime()
}
