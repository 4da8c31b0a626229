//go:build !linux && !darwin && !windows

package localfs

import (
	"io/fs"
	"time"
)

func fileInode(fs.FileInfo) uint64 { return 0 }

func fileDevice(fs.FileInfo) (uint64, bool) { return 0, false }

func changeTime(fi fs.FileInfo) time.Time { return fi.ModTime() }
