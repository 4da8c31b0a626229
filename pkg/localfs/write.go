package localfs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"
)

// WriteAtomic puts the content of r at name: it streams r into a temp file in the target's own
// directory (creating missing parents with 0755), sets mode and mtime, makes it durable (now, or
// at Sync in Batch mode), checks that the current file is still what expect says (else
// ErrChanged, and both are left alone), keeps the current file in the trash, and renames the temp
// into place. Readers see the old file or the new one, never a part; on any error the target is
// untouched and the temp is gone. It is safe for concurrent use.
func (f *Folder) WriteAtomic(name string, r io.Reader, meta FileMeta, expect *Expect) error {
	_, err := f.WriteAtomicStat(name, r, meta, expect)
	return err
}

// WriteAtomicStat is WriteAtomic returning the Lstat of the file it put in place, which spares
// the caller a walk of the path to read it back: taken just after the rename (change time
// included) where the folder is read through directory handles and the file is still the one
// written, else as it was just before the rename (inode, size, mode and mtime are the same).
func (f *Folder) WriteAtomicStat(name string, r io.Reader, meta FileMeta, expect *Expect) (fs.FileInfo, error) {
	if f.dirs != nil {
		return f.writeAtomicAt(name, r, meta, expect)
	}
	return f.writeAtomicRoot(name, r, meta, expect)
}

// namedInfo is a temp file's FileInfo under the name it was renamed to.
type namedInfo struct {
	fs.FileInfo
	name string
}

func (n namedInfo) Name() string { return n.name }

// writeAtomicRoot is WriteAtomic through the os.Root, where there are no directory handles.
func (f *Folder) writeAtomicRoot(name string, r io.Reader, meta FileMeta, expect *Expect) (fs.FileInfo, error) {
	abs, err := f.Resolve(name)
	if err != nil {
		return nil, err
	}
	// Check before spending the transfer; checked again just before the rename.
	if fi, exists, err := f.lstat(name); err != nil {
		return nil, err
	} else if !expect.matches(fi, exists) {
		return nil, f.changed(name)
	} else if exists && fi.IsDir() {
		return nil, fmt.Errorf("cannot write file %s: a directory has that name here; rename or remove it", abs)
	}
	created, err := f.mkdirs(path.Dir(name))
	if err != nil {
		return nil, err
	}
	tmpRel, info, err := f.writeTemp(name, r, meta)
	if err != nil {
		return nil, err
	}
	defer f.forget(tmpRel)
	committed := false
	defer func() {
		if !committed {
			_ = f.dir.Remove(tmpRel)
		}
	}()

	fi, exists, err := f.lstat(name)
	if err != nil {
		return nil, err
	}
	if !expect.matches(fi, exists) {
		return nil, f.changed(name)
	}
	if exists {
		if err := f.keepInTrash(abs, name, fi); err != nil {
			return nil, err
		}
	}
	if err := f.dir.Rename(tmpRel, filepath.FromSlash(name)); err != nil {
		return nil, f.ioErr("replace", name, err)
	}
	committed = true
	if err := f.durableDirs(filepath.Dir(abs), created); err != nil {
		return nil, err
	}
	return namedInfo{info, path.Base(name)}, nil
}

// writeTemp writes r to a new temp file beside name and returns its folder-relative path and
// its Lstat. The temp is registered as in flight so that CleanTemps leaves it alone.
func (f *Folder) writeTemp(name string, r io.Reader, meta FileMeta) (string, fs.FileInfo, error) {
	tmpRel, tmp, err := f.createTemp(name)
	if err != nil {
		return "", nil, err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			_ = f.dir.Remove(tmpRel)
			f.forget(tmpRel)
		}
	}()
	if _, err := io.Copy(tmp, readerOnly{r}); err != nil {
		var re *readError
		if errors.As(err, &re) {
			return "", nil, fmt.Errorf("read incoming data for %s: %w; nothing was replaced", name, re.err)
		}
		return "", nil, f.ioErr("write", name, err)
	}
	if err := tmp.Chmod(filePerm(meta.Mode)); err != nil {
		return "", nil, f.ioErr("set mode of", name, err)
	}
	if !meta.ModTime.IsZero() {
		if err := f.dir.Chtimes(tmpRel, time.Time{}, meta.ModTime); err != nil {
			return "", nil, f.ioErr("set mtime of", name, err)
		}
	}
	if err := f.fl.file(tmp, filepath.Join(f.root, filepath.FromSlash(name))); err != nil {
		return "", nil, f.ioErr("write", name, err)
	}
	if err := tmp.Close(); err != nil { // network filesystems report write errors here
		return "", nil, f.ioErr("write", name, err)
	}
	fi, err := f.dir.Lstat(tmpRel)
	if err != nil {
		return "", nil, f.ioErr("read", name, err)
	}
	// Some network filesystems stamp the mtime when the last write reaches the server.
	if !meta.ModTime.IsZero() && !fi.ModTime().Equal(meta.ModTime) {
		if f.dir.Chtimes(tmpRel, time.Time{}, meta.ModTime) == nil {
			if again, err := f.dir.Lstat(tmpRel); err == nil {
				fi = again
			}
		}
	}
	ok = true
	return tmpRel, fi, nil
}

func (f *Folder) createTemp(name string) (string, *os.File, error) {
	dirName := path.Dir(name)
	var b [8]byte
	for range 100 {
		_, _ = rand.Read(b[:])
		rel := filepath.Join(filepath.FromSlash(dirName), f.prefix+hex.EncodeToString(b[:]))
		f.mu.Lock()
		f.inflight[rel] = struct{}{}
		f.mu.Unlock()
		tmp, err := f.dir.OpenFile(rel, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return rel, tmp, nil
		}
		f.forget(rel)
		if !errors.Is(err, fs.ErrExist) {
			return "", nil, f.ioErr("create a temp file for", name, err)
		}
	}
	return "", nil, fmt.Errorf("create a temp file in %s: too many name collisions; run escale once with temp cleaning", dirName)
}

func (f *Folder) forget(tmpRel string) {
	f.mu.Lock()
	delete(f.inflight, tmpRel)
	f.mu.Unlock()
}

// keepInTrash puts a copy of the current file in the trash, then makes sure it did not change
// meanwhile: otherwise the version in the trash would not be the one about to be replaced.
func (f *Folder) keepInTrash(abs, name string, before fs.FileInfo) error {
	if _, err := f.trash.keep(abs, name); err != nil {
		return err
	}
	after, exists, err := f.lstat(name)
	if err != nil {
		return err
	}
	if !exists || !os.SameFile(before, after) || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
		return f.changed(name)
	}
	return nil
}

// filePerm applies FileMeta.Mode's policy.
func filePerm(m os.FileMode) os.FileMode {
	p := m.Perm()
	if p == 0 {
		p = 0o644
	}
	return (p | 0o600) &^ 0o002
}

// readerOnly marks errors that come from the source, so they are not reported as disk errors.
type readerOnly struct{ r io.Reader }

type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

func (r readerOnly) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}
