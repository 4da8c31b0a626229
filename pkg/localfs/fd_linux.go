package localfs

import "golang.org/x/sys/unix"

// utimeOmit in a utimensat time leaves that time as it is.
const utimeOmit = unix.UTIME_OMIT

// fsyncFD flushes an open file or directory to the disk, as os.File.Sync does.
func fsyncFD(fd int) error {
	_, err := retryEINTR(func() (struct{}, error) { return struct{}{}, unix.Fsync(fd) })
	return err
}
