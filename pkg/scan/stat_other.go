//go:build !linux && !openbsd && !darwin && !freebsd && !netbsd && !dragonfly

package scan

import "os"

const openFlags = 0

// sysStat has no inode or change time to offer here; change detection then
// rests on size and mtime (and the racy-window rule).
func sysStat(fi os.FileInfo, st *fileStat) {}
