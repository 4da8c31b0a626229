//go:build !unix

package watch

import "io/fs"

// fileID would identify a directory independently of its name; without a
// cheap identity (Windows' directory listings carry none) every directory
// looks the same, and renamed watches are left to fsnotify, whose Windows
// backend renames them itself.
type fileID struct{}

func idOf(fs.FileInfo) fileID { return fileID{} }
