//go:build !linux

package localfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// syncFilesystems fsyncs every touched file and directory: there is no syncfs(2) here.
// Files come first so that a directory entry never becomes durable before its content.
func syncFilesystems(_ []string, dirty []string) error {
	var dirs []string
	for _, p := range dirty {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed or renamed since: its directory entry is what matters
		}
		if err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
		if fi.IsDir() {
			dirs = append(dirs, p)
			continue
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if err := syncFile(p); err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
	}
	for _, d := range dirs {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("sync %s: %w", d, err)
		}
	}
	return nil
}

func syncFile(p string) error {
	// Windows needs write access to flush; a read-only file can still be flushed elsewhere.
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrPermission) {
		f, err = os.Open(p)
	}
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
