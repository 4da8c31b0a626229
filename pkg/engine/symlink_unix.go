//go:build unix

package engine

import (
	"time"

	"golang.org/x/sys/unix"
)

// setSymlinkTime sets the mtime of the link itself, not of its target.
func setSymlinkTime(path string, t time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(t.UnixNano()), unix.NsecToTimespec(t.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
}
