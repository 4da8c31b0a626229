//go:build linux || darwin

package localfs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// writeAtomicAt is WriteAtomic through a handle on the target's directory (dirs_unix.go says
// why that is safe). A new file costs: openat of the temp (O_CREAT|O_EXCL), the writes, fchmod,
// utimensat, close (with an fsync before it in PerFile mode), fstatat of the temp (the mtime
// check some network filesystems need, and the FileInfo returned), and a rename that refuses
// to replace anything (commitAt; where the file system cannot, fstatat of the target for the
// Expect check, then renameat).
func (f *Folder) writeAtomicAt(name string, r io.Reader, meta FileMeta, expect *Expect) (fs.FileInfo, error) {
	if err := ValidName(name, runtime.GOOS); err != nil {
		return nil, err
	}
	dir, base := path.Dir(name), path.Base(name)
	abs := filepath.Join(f.root, filepath.FromSlash(name))
	// Parents are only made for a file that may be new: when a file is expected there, a
	// missing parent means the user removed it, and nothing is recreated.
	create := expect == nil || !expect.Exists
	d, created, err := f.acquireDir(dir, name, create)
	if err != nil {
		return nil, err
	}
	defer func() {
		if d != nil {
			f.dirs.release(d)
		}
	}()
	tmp, tmpRel, fd, err := f.createTempAt(d, dir, name)
	if errors.Is(err, unix.ENOENT) && created == nil {
		// The cached directory was removed since (by someone else): open it afresh, once.
		f.dirs.release(d)
		f.dirs.releaseAll()
		if d, created, err = f.acquireDir(dir, name, create); err != nil {
			return nil, err
		}
		tmp, tmpRel, fd, err = f.createTempAt(d, dir, name)
	}
	if err != nil {
		return nil, f.ioErr("create a temp file for", name, err)
	}
	defer f.forget(tmpRel)
	committed := false
	defer func() {
		if !committed {
			_ = unix.Unlinkat(d.fd, tmp, 0)
		}
	}()
	// Check before spending the transfer (checked again just before the rename); content
	// already in memory costs nothing to write, so it is only checked once.
	if _, inMemory := r.(interface{ Len() int }); !inMemory {
		if _, err := f.checkAt(d, base, name, abs, expect); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	info, err := f.fillTemp(d, tmp, fd, name, abs, r, meta)
	if err != nil {
		return nil, err
	}
	if err := f.commitAt(d, tmp, base, name, abs, expect); err != nil {
		return nil, err
	}
	committed = true
	info.name = base
	// The rename moved the inode's change time: the caller's record (a
	// hint to the next scan) wants the file as it stands in place. Taken
	// only if it is still the inode written, unchanged but for the rename.
	if now, err := statAt(d.fd, base); err == nil && sameInode(now, info) && now.st.Size == info.st.Size && now.st.Mtim == info.st.Mtim {
		info = now
	}
	for _, c := range created {
		if err := f.fl.dir(filepath.Dir(c)); err != nil {
			return nil, err
		}
	}
	if err := f.fl.dirWith(d.abs, func() error { return fsyncFD(d.fd) }); err != nil {
		return nil, err
	}
	return info, nil
}

// errNoReplace: the file system cannot rename without replacing (renameNoReplace).
var errNoReplace = errors.New("rename without replacing is not supported here")

// commitAt renames the temp tmp to base in d once base is still what expect says. A file
// expected absent is put in place by a rename that refuses to replace anything, so one created
// meanwhile is kept (and the write reports ErrChanged); otherwise what is there is checked,
// kept in the trash, and replaced.
func (f *Folder) commitAt(d *dirHandle, tmp, base, name, abs string, expect *Expect) error {
	if expect != nil && !expect.Exists {
		err := renameNoReplace(d.fd, tmp, base)
		switch {
		case err == nil:
			return nil
		case err == unix.EEXIST:
			if _, err := f.checkAt(d, base, name, abs, expect); err != nil {
				return err // ErrChanged, or the directory's own message
			}
			return f.changed(name) // gone again already: judged next round
		case err != errNoReplace:
			return f.ioErr("replace", name, err)
		}
	}
	cur, err := f.checkAt(d, base, name, abs, expect)
	if err != nil {
		return err
	}
	if cur != nil {
		if err := f.keepInTrashAt(d, base, abs, name, cur); err != nil {
			return err
		}
	}
	if _, err := retryEINTR(func() (struct{}, error) {
		return struct{}{}, unix.Renameat(d.fd, tmp, d.fd, base)
	}); err != nil {
		return f.ioErr("replace", name, err)
	}
	return nil
}

// acquireDir is dirCache.acquire with the errors worded for the user.
func (f *Folder) acquireDir(dir, name string, create bool) (*dirHandle, []string, error) {
	d, created, err := f.dirs.acquire(dir, name, create)
	switch {
	case err == nil:
		return d, created, nil
	case errors.Is(err, ErrUnsafePath):
		return nil, nil, err
	case !create && errors.Is(err, fs.ErrNotExist):
		return nil, nil, f.changed(name)
	}
	return nil, nil, f.ioErr("create directory", dir, err)
}

// checkAt checks that what is at base in d is still what expect says, and returns it (nil if
// nothing is there).
func (f *Folder) checkAt(d *dirHandle, base, name, abs string, expect *Expect) (*statInfo, error) {
	fi, exists, err := lstatAt(d, base)
	switch {
	case err != nil:
		return nil, f.ioErr("read", name, err)
	case !expect.matches(fi, exists):
		return nil, f.changed(name)
	case exists && fi.IsDir():
		return nil, fmt.Errorf("cannot write file %s: a directory has that name here; rename or remove it", abs)
	}
	return fi, nil
}

// createTempAt creates a new temp file in d, registered as in flight so that CleanTemps leaves
// it alone, and returns its name, its folder-relative path and its descriptor. Errors are raw.
func (f *Folder) createTempAt(d *dirHandle, dir, name string) (string, string, int, error) {
	var b [8]byte
	for range 100 {
		_, _ = rand.Read(b[:])
		tmp := f.prefix + hex.EncodeToString(b[:])
		rel := filepath.Join(filepath.FromSlash(dir), tmp)
		f.mu.Lock()
		f.inflight[rel] = struct{}{}
		f.mu.Unlock()
		fd, err := retryEINTR(func() (int, error) {
			return unix.Openat(d.fd, tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		})
		if err == nil {
			return tmp, rel, fd, nil
		}
		f.forget(rel)
		if err != unix.EEXIST {
			return "", "", -1, err
		}
	}
	return "", "", -1, fmt.Errorf("create a temp file in %s: too many name collisions; run escale once with temp cleaning", dir)
}

// fillTemp streams r into the temp fd (whose name in d is tmp), sets its mode and mtime, makes
// it durable (now, or at Sync in Batch mode) and closes it; it returns the temp's Lstat.
func (f *Folder) fillTemp(d *dirHandle, tmp string, fd int, name, abs string, r io.Reader, meta FileMeta) (*statInfo, error) {
	open := true
	defer func() {
		if open {
			unix.Close(fd)
		}
	}()
	buf := f.bufs.Get().(*[]byte)
	_, err := io.CopyBuffer(fdWriter(fd), readerOnly{r}, *buf)
	f.bufs.Put(buf)
	if err != nil {
		var re *readError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("read incoming data for %s: %w; nothing was replaced", name, re.err)
		}
		return nil, f.ioErr("write", name, err)
	}
	if err := unix.Fchmod(fd, uint32(filePerm(meta.Mode))); err != nil {
		return nil, f.ioErr("set mode of", name, err)
	}
	if !meta.ModTime.IsZero() {
		if err := setMtimeAt(d.fd, tmp, meta.ModTime); err != nil {
			return nil, f.ioErr("set mtime of", name, err)
		}
	}
	if err := f.fl.fileWith(abs, func() error { return fsyncFD(fd) }); err != nil {
		return nil, f.ioErr("write", name, err)
	}
	open = false
	if err := unix.Close(fd); err != nil { // network filesystems report write errors here
		return nil, f.ioErr("write", name, err)
	}
	fi, err := statAt(d.fd, tmp)
	if err != nil {
		return nil, f.ioErr("read", name, err)
	}
	// Some network filesystems stamp the mtime when the last write reaches the server.
	if !meta.ModTime.IsZero() && !fi.ModTime().Equal(meta.ModTime) {
		if setMtimeAt(d.fd, tmp, meta.ModTime) == nil {
			if again, err := statAt(d.fd, tmp); err == nil {
				fi = again
			}
		}
	}
	return fi, nil
}

// setMtimeAt sets the mtime of name in dirfd, leaving its atime.
func setMtimeAt(dirfd int, name string, mtime time.Time) error {
	ts := [2]unix.Timespec{{Nsec: utimeOmit}, unix.NsecToTimespec(mtime.UnixNano())}
	_, err := retryEINTR(func() (struct{}, error) {
		return struct{}{}, unix.UtimesNanoAt(dirfd, name, ts[:], unix.AT_SYMLINK_NOFOLLOW)
	})
	return err
}

// keepInTrashAt is keepInTrash for base in d: the trash links (or copies) it through the
// handle, and the check after reads it there.
func (f *Folder) keepInTrashAt(d *dirHandle, base, abs, name string, before *statInfo) error {
	if _, err := f.trash.place(entrySource{d: d, name: base, abs: abs}, name, false); err != nil {
		return err
	}
	after, exists, err := lstatAt(d, base)
	if err != nil {
		return f.ioErr("read", name, err)
	}
	if !exists || !sameInode(before, after) || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		return f.changed(name)
	}
	return nil
}
