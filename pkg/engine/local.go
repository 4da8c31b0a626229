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
	"github.com/escale-sync/escale/pkg/state"
)

// localEntry is what the scan saw at a path. Fields are ordered so the
// struct packs into 64 bytes: there is one per file of the folder.
type localEntry struct {
	Kind scan.Kind
	// seen is localChanges' mark of the entries its walk of the state met;
	// it clears every mark before returning.
	seen   bool
	Mode   os.FileMode
	Size   int64
	MTime  int64
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
	return sameAs(le, st.Kind, st.Hash, st.Target, st.Mode, st.MTime)
}

// sameAs is sameAsState on the fields it reads, which localChanges also
// takes straight from a record's bytes (stateView).
func sameAs(le *localEntry, kind protocol.ChangeKind, hash, target string, mode uint32, mtime int64) bool {
	if le.changeKind() != kind || le.Hash != hash {
		return false
	}
	if kind == protocol.KindSymlink {
		return le.Target == target
	}
	// Exec bit and mtime to the second: what convergence promises, and what
	// coarse file systems (FAT: 2 s, some network fs: 1 s) can keep.
	return (uint32(le.Mode)&0o111 != 0) == (mode&0o111 != 0) && sameSecond(le.MTime, mtime)
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
	s := e.scanner()
	if written := e.written; len(written) > 0 {
		// The pull's files are taken as written while unchanged; only this
		// scan, right after the pull, uses them.
		e.written = nil
		s.Known = func(path string) (state.FileRecord, bool) {
			r, ok := written[path]
			return r, ok
		}
	}
	lv := &localView{entries: make(map[string]*localEntry)}
	var slab entrySlab
	conflicts := 0
	st, err := s.Scan(ctx, func(en scan.Entry) error {
		if en.Kind == scan.Dir {
			return nil
		}
		if localfs.IsTemp(en.Path) {
			return nil
		}
		lv.entries[en.Path] = slab.add(&en)
		lv.files++
		if isConflictCopy(en.Path) {
			conflicts++
		}
		return nil
	})
	slab.finish()
	e.db.ReleaseMapped() // the hash cache's pages, read for every file
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", e.opts.Path, err)
	}
	e.scanned.files, e.scanned.conflicts = len(lv.entries), conflicts
	if e.res != nil {
		e.res.HashedBytes += st.HashedBytes
	}
	lv.uncertain = append(lv.uncertain, st.Unstable...)
	for _, pe := range st.Errors {
		lv.uncertain = append(lv.uncertain, pe.Path)
		e.log.Warn("cannot read a local path; it is left out of this round", "path", pe.Path, "err", pe.Err)
	}
	return lv, nil
}

func (e *Engine) scanner() *scan.Scanner {
	return &scan.Scanner{Root: e.opts.Path, Filter: e.opts.Filter, Cache: e.db.HashCache(), RacyWindow: e.racyWindow}
}

// vouches reports whether the last scan's record of path vouches for hash
// (hex) while f, open at that path, is as it is now (scan.Scanner.Vouches).
func (e *Engine) vouches(path string, f *os.File, hash string) bool {
	b, err := hex.DecodeString(hash)
	if err != nil || len(b) != 32 {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	return e.scanner().Vouches(path, fi, [32]byte(b))
}

func isConflictCopy(path string) bool { return localfs.IsConflictName(path) }

// entrySlab allocates a scan's localEntries in blocks, and their hex hashes
// in shared strings: a big folder then costs a few thousand objects for the
// garbage collector instead of two per file, and no malloc rounding.
type entrySlab struct {
	block []localEntry
	// hexes holds the hex hashes of pending, whose Hash is set by finish.
	hexes   []byte
	pending []*localEntry
}

const slabEntries = 1024

func (s *entrySlab) add(en *scan.Entry) *localEntry {
	if len(s.block) == cap(s.block) {
		s.block = make([]localEntry, 0, slabEntries)
	}
	s.block = append(s.block, localEntry{Kind: en.Kind, Size: en.Size, MTime: en.ModTimeNs, Mode: en.Mode, Inode: en.Inode, Target: en.Target})
	le := &s.block[len(s.block)-1]
	if s.hexes == nil {
		s.hexes = make([]byte, 0, slabEntries*hex.EncodedLen(len(en.Hash)))
	}
	s.hexes = hex.AppendEncode(s.hexes, en.Hash[:])
	s.pending = append(s.pending, le)
	if len(s.pending) == slabEntries {
		s.finish()
	}
	return le
}

// finish gives the pending entries their Hash, slices of one string.
func (s *entrySlab) finish() {
	if len(s.pending) == 0 {
		return
	}
	all, n := string(s.hexes), len(s.hexes)/len(s.pending)
	for i, le := range s.pending {
		le.Hash = all[i*n : (i+1)*n]
	}
	s.hexes, s.pending = s.hexes[:0], s.pending[:0]
}
