package engine

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/escale-sync/escale/pkg/localfs"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/scan"
)

// localEntry is what the scan saw at a path.
type localEntry struct {
	Kind   scan.Kind
	Size   int64
	MTime  int64
	Mode   os.FileMode
	Inode  uint64
	Hash   string
	Target string
}

func (le *localEntry) changeKind() protocol.ChangeKind {
	if le.Kind == scan.Symlink {
		return protocol.KindSymlink
	}
	return protocol.KindFile
}

// expect is what localfs must still find before replacing or removing.
func (le *localEntry) expect() *localfs.Expect {
	if le == nil {
		return &localfs.Expect{}
	}
	return &localfs.Expect{Exists: true, Size: le.Size, ModTime: time.Unix(0, le.MTime), Inode: le.Inode}
}

// localView is one scan of the folder.
type localView struct {
	entries map[string]*localEntry
	// uncertain paths (unreadable, changing while read, below an unreadable
	// folder) are neither changed nor deleted this round.
	uncertain []string
	files     int
}

func (lv *localView) isUncertain(path string) bool {
	for _, u := range lv.uncertain {
		if path == u || strings.HasPrefix(path, u+"/") {
			return true
		}
	}
	return false
}

// modified reports whether the local path differs from what was last synced:
// a change made here that is not published yet.
func (lv *localView) modified(path string, st *fileState) (*localEntry, bool) {
	le := lv.entries[path]
	if lv.isUncertain(path) {
		return le, false
	}
	if st != nil && st.Have != nil {
		// The folder still holds an older content, the winner's is awaited.
		h := st.Have
		st = &fileState{Kind: h.Kind, Hash: h.Hash, MTime: h.MTime, Mode: h.Mode, Target: h.Target}
	}
	if st == nil || st.Kind == protocol.KindDelete {
		return le, le != nil
	}
	if le == nil {
		return nil, true
	}
	return le, !sameAsState(le, st)
}

func sameAsState(le *localEntry, st *fileState) bool {
	if le.changeKind() != st.Kind || le.Hash != st.Hash {
		return false
	}
	if st.Kind == protocol.KindSymlink {
		return le.Target == st.Target
	}
	// Exec bit and mtime to the second: what convergence promises, and what
	// coarse file systems (FAT: 2 s, some network fs: 1 s) can keep.
	return (uint32(le.Mode)&0o111 != 0) == (st.Mode&0o111 != 0) && sameSecond(le.MTime, st.MTime)
}

func sameSecond(a, b int64) bool {
	d := a/1e9 - b/1e9
	return d >= -1 && d <= 1 && (a/2e9 == b/2e9 || a/1e9 == b/1e9)
}

func (e *Engine) scanLocal(ctx context.Context) (*localView, error) {
	// A missing root (an unmounted disk) must stop the round: it must never
	// look like "every file was deleted".
	if fi, err := os.Stat(e.opts.Path); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("the folder %s is missing or not a folder (an unmounted disk?); nothing was synced", e.opts.Path)
	}
	s := &scan.Scanner{Root: e.opts.Path, Filter: e.opts.Filter, Cache: e.db.HashCache()}
	lv := &localView{entries: make(map[string]*localEntry)}
	st, err := s.Scan(ctx, func(en scan.Entry) error {
		if en.Kind == scan.Dir {
			return nil
		}
		if localfs.IsTemp(en.Path) {
			return nil
		}
		le := &localEntry{Kind: en.Kind, Size: en.Size, MTime: en.ModTimeNs, Mode: en.Mode, Inode: en.Inode, Hash: hex.EncodeToString(en.Hash[:]), Target: en.Target}
		lv.entries[en.Path] = le
		lv.files++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", e.opts.Path, err)
	}
	e.scanned.files, e.scanned.conflicts = len(lv.entries), 0
	for p := range lv.entries {
		if isConflictCopy(p) {
			e.scanned.conflicts++
		}
	}
	lv.uncertain = append(lv.uncertain, st.Unstable...)
	for _, pe := range st.Errors {
		lv.uncertain = append(lv.uncertain, pe.Path)
		e.log.Warn("cannot read a local path; it is left out of this round", "path", pe.Path, "err", pe.Err)
	}
	return lv, nil
}

func isConflictCopy(path string) bool { return localfs.IsConflictName(path) }
