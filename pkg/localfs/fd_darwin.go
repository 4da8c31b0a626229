package localfs

import "golang.org/x/sys/unix"

// utimeOmit in a utimensat time leaves that time as it is (UTIME_OMIT in <sys/stat.h>, which
// golang.org/x/sys/unix does not define for darwin).
const utimeOmit = -2

// fsyncFD flushes an open file or directory to the disk, as os.File.Sync does: fsync(2) on
// macOS leaves the data in the drive's cache, F_FULLFSYNC does not (some filesystems, SMB
// mounts for one, only know fsync).
func fsyncFD(fd int) error {
	_, err := retryEINTR(func() (struct{}, error) {
		_, err := unix.FcntlInt(uintptr(fd), unix.F_FULLFSYNC, 0)
		if err == unix.ENOTSUP {
			err = unix.Fsync(fd)
		}
		return struct{}{}, err
	})
	return err
}

// renameNoReplace renames from to to in the directory dirfd unless to exists (EEXIST then):
// the check and the rename are one step, so a file created meanwhile is never replaced.
// errNoReplace says the file system cannot do it.
func renameNoReplace(dirfd int, from, to string) error {
	_, err := retryEINTR(func() (struct{}, error) {
		return struct{}{}, unix.RenameatxNp(dirfd, from, dirfd, to, unix.RENAME_EXCL)
	})
	switch err {
	case unix.EINVAL, unix.ENOTSUP, unix.ENOSYS:
		return errNoReplace
	}
	return err
}
