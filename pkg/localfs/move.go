package localfs

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Remove moves the file or symlink at name to the trash if it is still what expect says (else
// ErrChanged), then removes the parent directories it left empty. An empty directory is
// removed; a non-empty one is refused. A name that is already gone is not an error.
func (f *Folder) Remove(name string, expect *Expect) error {
	abs, err := f.Resolve(name)
	if err != nil {
		return err
	}
	fi, exists, err := f.lstat(name)
	if err != nil || !exists {
		return err
	}
	if !expect.matches(fi, exists) {
		return f.changed(name)
	}
	if fi.IsDir() {
		if err := f.dir.Remove(filepath.FromSlash(name)); err != nil {
			return fmt.Errorf("remove directory %s: %w; it is not empty — its files are removed one by one", abs, err)
		}
		f.dirs.forget(name)
		if err := f.fl.dir(filepath.Dir(abs)); err != nil {
			return err
		}
	} else if _, err := f.trash.Put(abs, name); err != nil {
		return err
	}
	return f.removeEmptyParents(name)
}

// removeEmptyParents removes name's ancestors that are now empty, up to (not including) the root.
func (f *Folder) removeEmptyParents(name string) error {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		fi, exists, err := f.lstat(dir)
		if err != nil || !exists || !fi.IsDir() {
			return err
		}
		if err := f.dir.Remove(filepath.FromSlash(dir)); err != nil {
			return nil // not empty (or not ours to remove): stop here
		}
		f.dirs.forget(dir)
		if err := f.fl.dir(filepath.Dir(filepath.Join(f.root, filepath.FromSlash(dir)))); err != nil {
			return err
		}
	}
	return nil
}

// Rename moves the file or symlink at from to to, atomically, if from is still what expect says
// (else ErrChanged). It never overwrites: an existing file at to is kept in the trash first. A
// case-only rename on a case-insensitive filesystem works. Parents of to are created; parents
// of from left empty are removed.
func (f *Folder) Rename(from, to string, expect *Expect) error {
	fromAbs, err := f.Resolve(from)
	if err != nil {
		return err
	}
	toAbs, err := f.Resolve(to)
	if err != nil {
		return err
	}
	if from == to {
		return nil
	}
	fi, exists, err := f.lstat(from)
	if err != nil {
		return err
	}
	if !exists || !expect.matches(fi, exists) {
		return f.changed(from)
	}
	if fi.IsDir() {
		return fmt.Errorf("rename %s: it is a directory; escale moves files one by one", fromAbs)
	}
	created, err := f.mkdirs(path.Dir(to))
	if err != nil {
		return err
	}
	tfi, texists, err := f.lstat(to)
	if err != nil {
		return err
	}
	if texists {
		switch {
		case os.SameFile(fi, tfi) && strings.EqualFold(from, to):
			// A case-insensitive filesystem sees one file: a plain rename changes the case.
		case os.SameFile(fi, tfi):
			// Two hard links to one file: to already has the content, and rename(2) would do nothing.
			if _, err := f.trash.Put(fromAbs, from); err != nil {
				return err
			}
			return f.removeEmptyParents(from)
		case tfi.IsDir():
			return fmt.Errorf("cannot move %s to %s: a directory has that name; rename or remove it", from, toAbs)
		default:
			if err := f.keepInTrash(toAbs, to, tfi); err != nil {
				return err
			}
		}
	}
	if err := f.dir.Rename(filepath.FromSlash(from), filepath.FromSlash(to)); err != nil {
		return f.ioErr("move "+from+" to", to, err)
	}
	if err := f.durableDirs(filepath.Dir(toAbs), created); err != nil {
		return err
	}
	if err := f.fl.dir(filepath.Dir(fromAbs)); err != nil {
		return err
	}
	return f.removeEmptyParents(from)
}
