package scan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/zeebo/blake3"

	"github.com/escale-sync/escale/pkg/filter"
	"github.com/escale-sync/escale/pkg/state"
)

// fileStat is the part of an lstat that change detection looks at.
type fileStat struct {
	size, mtimeNs, ctimeNs int64
	ino, dev               uint64
	mode                   os.FileMode
}

func statOf(fi os.FileInfo) fileStat {
	st := fileStat{size: fi.Size(), mtimeNs: fi.ModTime().UnixNano(), mode: fi.Mode()}
	sysStat(fi, &st)
	return st
}

// unchanged: nothing a write, truncate, chmod or replace-by-rename would move.
func (a fileStat) unchanged(b fileStat) bool {
	return a.size == b.size && a.mtimeNs == b.mtimeNs && a.ctimeNs == b.ctimeNs &&
		a.ino == b.ino && a.dev == b.dev && a.mode == b.mode
}

// racy: taken at t (unix ns) so soon after the last change that a further
// change could leave the timestamps as they are.
func racy(ctimeNs, mtimeNs, t, window int64) bool {
	ref := ctimeNs
	if ref == 0 {
		ref = mtimeNs
	}
	return ref > t-window
}

func trusted(r *state.FileRecord, st fileStat, window int64) bool {
	return r.Size == st.size && r.ModTimeNs == st.mtimeNs && r.ChangeTimeNs == st.ctimeNs &&
		r.Inode == st.ino && !racy(r.ChangeTimeNs, r.ModTimeNs, r.CheckedAt, window)
}

type outcome uint8

const (
	outNone     outcome = iota // bookkeeping only (cache deletes)
	outEmit                    // emit entry
	outSkip                    // Stats.Skipped
	outError                   // Stats.Errors
	outUnstable                // Stats.Unstable
	outVanished                // gone before it could be read: nothing to report
)

// job is one step of the walk, in walk order. Jobs that need a file read go
// to the workers too, and close done when finished.
type job struct {
	entry   Entry
	outcome outcome
	reason  string
	err     error
	deletes []string // cache records to drop

	// File reads.
	done        chan struct{}
	dir         *dirHandle
	name        string
	before      fileStat
	t0          int64 // unix ns just before before was taken
	record      *state.FileRecord
	hashed      int
	hashedBytes int64
}

// dirHandle is an open directory, closed when the walker and every read in it
// are done, so open descriptors stay about the depth of the tree.
type dirHandle struct {
	root *os.Root
	refs atomic.Int32
}

func (d *dirHandle) acquire() { d.refs.Add(1) }
func (d *dirHandle) release() {
	if d.refs.Add(-1) == 0 {
		d.root.Close()
	}
}

type walker struct {
	s        *Scanner
	ctx      context.Context
	ordered  chan<- *job
	work     chan<- *job
	free     <-chan *job // jobs the consumer is done with, for reuse
	window   int64
	visited  map[string]struct{} // directories whose listing was read
	excluded int
}

// child is one listed entry that passed the filter.
type child struct {
	name     string
	path     string // rel/name
	st       fileStat
	included bool // dirs: included, for their children
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func (w *walker) walk(root *os.Root) error {
	defer close(w.work)
	defer close(w.ordered)
	h := &dirHandle{root: root}
	h.acquire()
	return w.dir(h, "", w.s.Filter, w.s.Filter.RootIncluded(), nil)
}

// send queues j in walk order; false when the scan is cancelled.
func (w *walker) send(j *job) bool {
	select {
	case w.ordered <- j:
		return true
	case <-w.ctx.Done():
		return false
	}
}

func (w *walker) note(path string, out outcome, reason string, err error) bool {
	j := w.job()
	j.entry.Path, j.outcome, j.reason, j.err = path, out, reason, err
	return w.send(j)
}

// job returns a zeroed job, one the consumer is done with if there is one:
// a warm scan then allocates no job per file.
func (w *walker) job() *job {
	select {
	case j := <-w.free:
		*j = job{}
		return j
	default:
		return new(job)
	}
}

// dir scans directory rel, open as h (released on return). self is the
// directory's own entry to emit, or nil for the root and for directories
// that are only walked through (not included).
func (w *walker) dir(h *dirHandle, rel string, f *filter.Filter, included bool, self *Entry) error {
	defer h.release()
	d, err := openDir(h.root)
	if err != nil {
		return w.dirError(rel, err)
	}
	t0 := time.Now().UnixNano() // before the lstats: see racy
	children, fileNames, f, err := w.list(h.root, d, rel, f, included)
	d.close()
	if err != nil || children == nil {
		return err
	}
	w.visited[rel] = struct{}{}

	if self != nil {
		self.Empty = len(children) == 0
		j := w.job()
		j.entry, j.outcome = *self, outEmit
		if !w.send(j) {
			return w.ctx.Err()
		}
	}

	recs := make([]state.FileRecord, len(fileNames))
	found := make([]bool, len(fileNames))
	if w.s.Cache != nil {
		stale, err := w.s.Cache.LookupDir(rel, fileNames, recs, found)
		if err != nil {
			return fmt.Errorf("scan %s: %w", w.s.Root, err)
		}
		if len(stale) > 0 {
			del := make([]string, len(stale))
			for i, n := range stale {
				del[i] = join(rel, n)
			}
			j := w.job()
			j.deletes = del
			if !w.send(j) {
				return w.ctx.Err()
			}
		}
	}

	fi := 0 // index into fileNames
	for _, c := range children {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		e := Entry{Path: c.path, Size: c.st.size, ModTimeNs: c.st.mtimeNs, Mode: c.st.mode, Inode: c.st.ino}
		var err error
		switch c.st.mode.Type() {
		case 0:
			e.Kind = File
			err = w.file(h, c, e, &recs[fi], found[fi], t0)
			fi++
		case fs.ModeDir:
			e.Kind, e.Size = Dir, 0
			err = w.subdir(h, c, e, f)
		case fs.ModeSymlink:
			err = w.symlink(h, c, e)
		default:
			if !w.note(c.path, outSkip, specialKind(c.st.mode), nil) {
				err = w.ctx.Err()
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// list reads directory rel, open as d, and lstats its entries: the synced
// children in name order, the names of the regular files among them, and
// the filter for below (with the folder's ignore file). children is nil
// when the directory was reported unreadable.
func (w *walker) list(root *os.Root, d *dirLister, rel string, f *filter.Filter, included bool) (children []child, fileNames []string, _ *filter.Filter, err error) {
	names, err := d.names()
	if err != nil {
		return nil, nil, f, w.dirError(rel, err)
	}
	slices.Sort(names)
	if slices.Contains(names, filter.IgnoreFileName) {
		if f, err = loadIgnore(root, rel, f); err != nil {
			return nil, nil, f, w.dirError(rel, err)
		}
	}
	children = make([]child, 0, len(names))
	for _, name := range names {
		crel := join(rel, name)
		st, err := d.lstat(name)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted since the listing
			}
			if !w.note(crel, outError, "", err) {
				return nil, nil, f, w.ctx.Err()
			}
			continue
		}
		c := child{name: name, path: crel, st: st}
		switch typ := c.st.mode.Type(); {
		case typ == fs.ModeDir:
			var descend bool
			if descend, c.included = f.Dir(crel, included); !descend {
				w.excluded++
				continue
			}
		case !f.File(crel, included):
			w.excluded++
			continue
		case typ == 0:
			fileNames = append(fileNames, name)
		}
		children = append(children, c)
	}
	return children, fileNames, f, nil
}

// dirError reports an unreadable directory and goes on, unless the root
// itself is unreadable: then there is nothing to scan.
func (w *walker) dirError(rel string, err error) error {
	if rel == "" {
		return fmt.Errorf("scan %s: %w; check the folder's permissions", w.s.Root, err)
	}
	if !w.note(rel, outError, "", err) {
		return w.ctx.Err()
	}
	return nil
}

func (w *walker) file(h *dirHandle, c child, e Entry, rec *state.FileRecord, found bool, t0 int64) error {
	j := w.job()
	if found && trusted(rec, c.st, w.window) {
		e.Hash = rec.Hash
		j.entry, j.outcome = e, outEmit
		if !w.send(j) {
			return w.ctx.Err()
		}
		return nil
	}
	if w.s.Known != nil && c.st.ctimeNs != 0 {
		if k, ok := w.s.Known(e.Path); ok && k.Size == c.st.size && k.ModTimeNs == c.st.mtimeNs &&
			k.ChangeTimeNs == c.st.ctimeNs && k.Inode == c.st.ino {
			e.Hash = k.Hash
			e.Racy = racy(c.st.ctimeNs, c.st.mtimeNs, t0, w.window)
			k.Mode, k.CheckedAt = uint32(c.st.mode), t0
			j.entry, j.outcome, j.record = e, outEmit, &k
			if !w.send(j) {
				return w.ctx.Err()
			}
			return nil
		}
	}
	j.entry, j.done, j.dir, j.name, j.before, j.t0 = e, make(chan struct{}), h, c.name, c.st, t0
	h.acquire()
	if !w.send(j) {
		h.release()
		return w.ctx.Err()
	}
	select {
	case w.work <- j:
	case <-w.ctx.Done():
		// Queued in order but never read: finish it here so the consumer
		// does not wait for it.
		h.release()
		j.outcome = outError
		j.err = w.ctx.Err()
		close(j.done)
		return w.ctx.Err()
	}
	return nil
}

func (w *walker) symlink(h *dirHandle, c child, e Entry) error {
	target, err := h.root.Readlink(c.name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if !w.note(e.Path, outError, "", err) {
			return w.ctx.Err()
		}
		return nil
	}
	e.Kind = Symlink
	e.Target = target
	e.Size = int64(len(target))
	e.Hash = blake3.Sum256([]byte(target))
	j := w.job()
	j.entry, j.outcome = e, outEmit
	if !w.send(j) {
		return w.ctx.Err()
	}
	return nil
}

func (w *walker) subdir(h *dirHandle, c child, e Entry, f *filter.Filter) error {
	sub, err := h.root.OpenRoot(c.name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return w.dirError(e.Path, err)
	}
	// OpenRoot follows a symlink that replaced the directory since the lstat;
	// never walk through one.
	fi, err := sub.Stat(".")
	if err != nil {
		sub.Close()
		return w.dirError(e.Path, err)
	}
	if st := statOf(fi); st.ino != c.st.ino || st.dev != c.st.dev || !fi.IsDir() {
		sub.Close()
		if !w.note(e.Path, outUnstable, "", nil) {
			return w.ctx.Err()
		}
		return nil
	}
	sh := &dirHandle{root: sub}
	sh.acquire()
	var self *Entry
	if c.included {
		self = &e
	}
	return w.dir(sh, e.Path, f, c.included, self)
}

func loadIgnore(root *os.Root, rel string, f *filter.Filter) (*filter.Filter, error) {
	fi, err := root.Lstat(filter.IgnoreFileName)
	if err != nil || !fi.Mode().IsRegular() {
		return f, nil // gone, or not a file: no rules
	}
	if fi.Size() > maxIgnoreFileSize {
		return nil, fmt.Errorf("%s is over %d bytes; shorten it", filter.IgnoreFileName, maxIgnoreFileSize)
	}
	content, err := root.ReadFile(filter.IgnoreFileName)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filter.IgnoreFileName, err)
	}
	return f.WithIgnoreFile(rel, content)
}

func specialKind(m os.FileMode) string {
	switch {
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeIrregular != 0:
		return "irregular file"
	}
	return "unsupported file type " + m.Type().String()
}
