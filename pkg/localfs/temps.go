package localfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"
)

// IsTemp reports whether name (slash- or OS-separated) is one of this folder's temp files.
func (f *Folder) IsTemp(name string) bool { return strings.HasPrefix(baseName(name), f.prefix) }

// IsTemp reports whether name (slash- or OS-separated) is an escale temp file with the default
// prefix; the scanner skips these.
func IsTemp(name string) bool { return strings.HasPrefix(baseName(name), DefaultTempPrefix) }

func baseName(name string) string {
	return name[strings.LastIndexAny(name, "/"+string(filepath.Separator))+1:]
}

// CleanTemps removes temp files left by a crash whose inode changed more than grace ago
// (ctime, not mtime: a temp's mtime is set to the incoming file's), skipping the temps this
// Folder is writing. It returns how many it removed.
func (f *Folder) CleanTemps(grace time.Duration) (int, error) {
	cutoff := f.now().Add(-grace)
	n := 0
	var errs []error
	err := filepath.WalkDir(f.real, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == f.real {
				return err
			}
			errs = append(errs, err)
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() || !strings.HasPrefix(d.Name(), f.prefix) {
			return nil
		}
		rel, err := filepath.Rel(f.real, p)
		if err != nil {
			return err
		}
		f.mu.Lock()
		_, busy := f.inflight[rel]
		f.mu.Unlock()
		if busy {
			return nil
		}
		fi, err := d.Info()
		if err != nil || changeTime(fi).After(cutoff) {
			return nil
		}
		if err := f.dir.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			return nil
		}
		n++
		return nil
	})
	if err := errors.Join(append(errs, err)...); err != nil {
		return n, fmt.Errorf("clean temp files in %s: %w", f.root, err)
	}
	return n, nil
}
