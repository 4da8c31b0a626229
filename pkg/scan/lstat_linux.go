//go:build linux

package scan

import (
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// dirLister lists a directory and lstats its entries with fstatat on the
// directory's descriptor: no FileInfo, no path resolution, one allocation
// (the name's C string) per entry, where os.Root.Lstat made several.
type dirLister struct {
	f  *os.File
	fd int
}

func openDir(root *os.Root) (*dirLister, error) {
	f, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	return &dirLister{f: f, fd: int(f.Fd())}, nil
}

func (d *dirLister) names() ([]string, error) { return d.f.Readdirnames(-1) }

func (d *dirLister) close() { d.f.Close() }

// lstat never follows a symlink; name is one path element, so it cannot
// leave the directory.
func (d *dirLister) lstat(name string) (fileStat, error) {
	var s unix.Stat_t
	var err error
	for {
		if err = unix.Fstatat(d.fd, name, &s, unix.AT_SYMLINK_NOFOLLOW); err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fileStat{}, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	return fileStat{
		size: s.Size, mtimeNs: unix.TimespecToNsec(s.Mtim), ctimeNs: unix.TimespecToNsec(s.Ctim),
		ino: uint64(s.Ino), dev: uint64(s.Dev), mode: fileMode(uint32(s.Mode)),
	}, nil
}

// fileMode converts st_mode as package os does (fillFileStatFromSys), so
// these stats compare equal to os.Lstat's.
func fileMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFBLK:
		mode |= os.ModeDevice
	case unix.S_IFCHR:
		mode |= os.ModeDevice | os.ModeCharDevice
	case unix.S_IFDIR:
		mode |= os.ModeDir
	case unix.S_IFIFO:
		mode |= os.ModeNamedPipe
	case unix.S_IFLNK:
		mode |= os.ModeSymlink
	case unix.S_IFSOCK:
		mode |= os.ModeSocket
	}
	if m&unix.S_ISGID != 0 {
		mode |= os.ModeSetgid
	}
	if m&unix.S_ISUID != 0 {
		mode |= os.ModeSetuid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= os.ModeSticky
	}
	return mode
}
