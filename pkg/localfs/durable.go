package localfs

import (
	"fmt"
	"os"
	"sync"
)

// Durability says when writes reach the disk.
type Durability int

const (
	// PerFile fsyncs every file and directory as it is written: slow, but each call is
	// durable when it returns.
	PerFile Durability = iota
	// Batch defers durability to Folder.Sync (one syncfs per filesystem on Linux); callers
	// must call Sync before they acknowledge anything to the relay.
	Batch
)

func (d Durability) String() string {
	if d == Batch {
		return "batch"
	}
	return "per-file"
}

// flusher applies a Durability: at once, or by remembering what to flush at Sync.
type flusher struct {
	batch bool
	mu    sync.Mutex
	dirty map[string]struct{} // absolute paths touched since the last flush (Batch only)
}

// file makes an open file's content and metadata durable, or notes its final path for Sync.
func (fl *flusher) file(f *os.File, finalPath string) error { return fl.fileWith(finalPath, f.Sync) }

// fileWith is file for a file the caller has open some other way: sync flushes it.
func (fl *flusher) fileWith(finalPath string, sync func() error) error {
	if fl.batch {
		fl.note(finalPath)
		return nil
	}
	if err := sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", finalPath, err)
	}
	return nil
}

// dir makes a directory's entries durable, or notes it for Sync.
func (fl *flusher) dir(path string) error {
	return fl.dirWith(path, func() error { return syncDir(path) })
}

// dirWith is dir for a directory the caller has open: sync flushes it.
func (fl *flusher) dirWith(path string, sync func() error) error {
	if fl.batch {
		fl.note(path)
		return nil
	}
	if err := sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", path, err)
	}
	return nil
}

func (fl *flusher) note(path string) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.dirty == nil {
		fl.dirty = map[string]struct{}{}
	}
	fl.dirty[path] = struct{}{}
}

// flush makes everything noted durable. On failure the notes are kept, so a retry covers them.
func (fl *flusher) flush(roots ...string) error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	paths := make([]string, 0, len(fl.dirty))
	for p := range fl.dirty {
		paths = append(paths, p)
	}
	if err := syncFilesystems(roots, paths); err != nil {
		return err
	}
	fl.dirty = nil
	return nil
}
