//go:build linux

package scan

import (
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/escale-sync/escale/pkg/localfs"
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
		ino: uint64(s.Ino), dev: uint64(s.Dev), mode: localfs.FileMode(uint32(s.Mode)),
	}, nil
}
