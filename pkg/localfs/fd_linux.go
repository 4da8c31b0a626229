package localfs

import "golang.org/x/sys/unix"

// utimeOmit in a utimensat time leaves that time as it is.
const utimeOmit = unix.UTIME_OMIT

// fsyncFD flushes an open file or directory to the disk, as os.File.Sync does.
func fsyncFD(fd int) error {
	_, err := retryEINTR(func() (struct{}, error) { return struct{}{}, unix.Fsync(fd) })
	return err
}

// renameNoReplace renames from to to in the directory dirfd unless to exists (EEXIST then):
// the check and the rename are one step, so a file created meanwhile is never replaced.
// errNoReplace says the file system cannot do it (some network and FUSE ones).
func renameNoReplace(dirfd int, from, to string) error {
	_, err := retryEINTR(func() (struct{}, error) {
		return struct{}{}, unix.Renameat2(dirfd, from, dirfd, to, unix.RENAME_NOREPLACE)
	})
	switch err {
	case unix.EINVAL, unix.ENOSYS, unix.EOPNOTSUPP:
		return errNoReplace
	}
	return err
}
