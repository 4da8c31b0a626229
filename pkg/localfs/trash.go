package localfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// trashLayout names one trash batch directory, in UTC so that names sort and parse the same
// whatever the machine's time zone.
const trashLayout = "20060102-150405"

// maxTrashSlots bounds the search for a free "<stamp>-N" directory.
const maxTrashSlots = 10000

// Trash keeps what escale replaced or deleted: TrashDir/<yyyymmdd-hhmmss>[-N]/<name>, with the
// file's mode and mtime. When <stamp>/<name> is taken, the next free <stamp>-N is used, so the
// name inside the trash is always the original one and restoring is a plain move.
type Trash struct {
	dir string
	now func() time.Time
	fl  *flusher
	mu  sync.Mutex // serialises slot reservation: os.Rename would silently replace a taken slot
}

// TrashEntry is one file in the trash.
type TrashEntry struct {
	Name      string    // slash-separated name in the synced folder
	Path      string    // where it is now
	TrashedAt time.Time // UTC, to the second
	Size      int64
	Mode      fs.FileMode
	ModTime   time.Time
}

// NewTrash opens (creating with mode 0700) a trash directory. now is the clock (nil: time.Now).
// Each Put is made durable before it returns.
func NewTrash(dir string, now func() time.Time) (*Trash, error) {
	return newTrash(dir, now, &flusher{})
}

func newTrash(dir string, now func() time.Time, fl *flusher) (*Trash, error) {
	if dir == "" {
		return nil, errors.New("no trash directory given: set one (escale keeps it in its state directory)")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("trash directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("create trash directory %s: %w; check its parent's permissions or choose another state directory", abs, err)
	}
	if now == nil {
		now = time.Now
	}
	return &Trash{dir: abs, now: now, fl: fl}, nil
}

// Dir is the trash's root directory.
func (t *Trash) Dir() string { return t.dir }

// Put moves the file or symlink at absPath into the trash under name (its slash-separated name
// in the synced folder) and returns where it went. Across filesystems it copies, fsyncs the copy,
// then removes the original.
func (t *Trash) Put(absPath, name string) (string, error) {
	return t.place(pathSource(absPath), name, true)
}

// keep puts a copy of absPath in the trash and leaves absPath in place: a hard link where
// possible, so the live file is never missing (a crash between "to trash" and "new version in
// place" would otherwise look like a deletion to the scanner).
func (t *Trash) keep(absPath, name string) (string, error) {
	return t.place(pathSource(absPath), name, false)
}

// trashSource is the file place puts in the trash: a path, or an entry of a directory the
// caller holds open (WriteAtomic's handles), so that no path is walked again.
type trashSource interface {
	String() string // its absolute path: for messages, and whose directory to make durable
	lstat() (fs.FileInfo, error)
	link(dst string) error
	rename(dst string) error
	remove() error
	open() (*os.File, error)
	readlink() (string, error)
}

type pathSource string

func (p pathSource) String() string              { return string(p) }
func (p pathSource) lstat() (fs.FileInfo, error) { return os.Lstat(string(p)) }
func (p pathSource) link(dst string) error       { return os.Link(string(p), dst) }
func (p pathSource) rename(dst string) error     { return os.Rename(string(p), dst) }
func (p pathSource) remove() error               { return os.Remove(string(p)) }
func (p pathSource) open() (*os.File, error)     { return os.Open(string(p)) }
func (p pathSource) readlink() (string, error)   { return os.Readlink(string(p)) }

func (t *Trash) place(src trashSource, name string, move bool) (string, error) {
	if err := ValidName(name, ""); err != nil {
		return "", err
	}
	fi, err := src.lstat()
	if err != nil {
		return "", fmt.Errorf("move %s to the trash: %w", name, err)
	}
	if !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0 {
		return "", fmt.Errorf("move %s to the trash: it is a %s, not a file; only files and symlinks are trashed", name, kindOf(fi))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	dst, created, err := t.reserve(name)
	if err != nil {
		return "", err
	}
	if move {
		err = src.rename(dst)
	} else {
		err = src.link(dst)
	}
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrExist), move && !isCrossDevice(err):
		return "", t.placeErr(name, err) // an existing slot is never overwritten
	default: // another filesystem, or no hard links here: copy, durably, whatever the mode
		if err := copyDurably(src, dst, fi); err != nil {
			return "", t.placeErr(name, err)
		}
		if move {
			if err := src.remove(); err != nil {
				return "", fmt.Errorf("remove %s after copying it to the trash (%s): %w", name, dst, err)
			}
		}
	}
	for _, d := range created {
		if err := t.fl.dir(filepath.Dir(d)); err != nil {
			return "", err
		}
	}
	if err := t.fl.dir(filepath.Dir(dst)); err != nil {
		return "", err
	}
	if move {
		if err := t.fl.dir(filepath.Dir(src.String())); err != nil {
			return "", err
		}
	}
	return dst, nil
}

func (t *Trash) placeErr(name string, err error) error {
	switch {
	case isNoSpace(err):
		return fmt.Errorf("no space left on %s while moving %s to the trash; nothing was replaced — free some space or purge the trash, then sync again: %w", mountPoint(t.dir), name, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("permission denied moving %s to the trash %s: give this user write access to both: %w", name, t.dir, err)
	}
	return fmt.Errorf("move %s to the trash: %w", name, err)
}

// reserve finds a free slot for name and creates its parent directories, returning the slot
// and the directories it created (their parents need an fsync for the slot to be durable).
func (t *Trash) reserve(name string) (string, []string, error) {
	stamp := t.now().UTC().Format(trashLayout)
	rel := filepath.FromSlash(name)
	for i := 0; i < maxTrashSlots; i++ {
		slot := stamp
		if i > 0 {
			slot += "-" + strconv.Itoa(i)
		}
		dst := filepath.Join(t.dir, slot, rel)
		if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
			continue // taken (or unreadable): try the next slot
		}
		created, err := mkdirChain(filepath.Dir(filepath.Join(slot, rel)),
			func(p string) error { return os.Mkdir(filepath.Join(t.dir, p), 0o755) },
			func(p string) (fs.FileInfo, error) { return os.Lstat(filepath.Join(t.dir, p)) })
		if errors.Is(err, errNotDir) {
			continue // e.g. "a" was trashed as a file in this slot and now "a/b" comes
		}
		if err != nil {
			return "", nil, t.placeErr(name, err)
		}
		for i := range created {
			created[i] = filepath.Join(t.dir, created[i])
		}
		return dst, created, nil
	}
	return "", nil, fmt.Errorf("move %s to the trash: no free slot under %s; purge the trash", name, filepath.Join(t.dir, stamp))
}

// List returns every file in the trash, oldest first.
func (t *Trash) List() ([]TrashEntry, error) {
	slots, err := t.slots()
	if err != nil {
		return nil, err
	}
	var out []TrashEntry
	for _, s := range slots {
		err := filepath.WalkDir(s.path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || IsTemp(d.Name()) {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(s.path, p)
			if err != nil {
				return err
			}
			out = append(out, TrashEntry{Name: filepath.ToSlash(rel), Path: p, TrashedAt: s.at,
				Size: fi.Size(), Mode: fi.Mode(), ModTime: fi.ModTime()})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list trash %s: %w", s.path, err)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].TrashedAt.Equal(out[j].TrashedAt) {
			return out[i].TrashedAt.Before(out[j].TrashedAt)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Purge deletes what was trashed olderThan ago or earlier (by the time it was trashed, not its
// mtime; Purge(0) empties the trash) and returns how many files went. Directories it does not
// recognise are left alone.
func (t *Trash) Purge(olderThan time.Duration) (int, error) {
	slots, err := t.slots()
	if err != nil {
		return 0, err
	}
	cutoff := t.now().Add(-olderThan)
	n := 0
	var errs []error
	for _, s := range slots {
		if s.at.After(cutoff) {
			continue
		}
		files := 0
		_ = filepath.WalkDir(s.path, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !IsTemp(d.Name()) {
				files++
			}
			return nil
		})
		if err := os.RemoveAll(s.path); err != nil {
			errs = append(errs, err)
			continue
		}
		n += files
	}
	if len(errs) > 0 {
		return n, fmt.Errorf("purge trash %s: %w", t.dir, errors.Join(errs...))
	}
	return n, nil
}

type trashSlot struct {
	path string
	at   time.Time
}

func (t *Trash) slots() ([]trashSlot, error) {
	ents, err := os.ReadDir(t.dir)
	if err != nil {
		return nil, fmt.Errorf("read trash %s: %w", t.dir, err)
	}
	var out []trashSlot
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		if len(name) < len(trashLayout) {
			continue
		}
		stamp, suffix := name[:len(trashLayout)], name[len(trashLayout):]
		at, err := time.Parse(trashLayout, stamp)
		if err != nil || (suffix != "" && !isSlotSuffix(suffix)) {
			continue
		}
		out = append(out, trashSlot{path: filepath.Join(t.dir, e.Name()), at: at})
	}
	return out, nil
}

func isSlotSuffix(s string) bool {
	rest, ok := strings.CutPrefix(s, "-")
	if !ok || rest == "" {
		return false
	}
	_, err := strconv.Atoi(rest)
	return err == nil
}

// copyDurably copies a file or symlink to dst (which must not exist) through a temp file,
// keeping mode and mtime, and fsyncs it: it is used when the original is about to go, and
// journal ordering does not hold across filesystems.
func copyDurably(src trashSource, dst string, fi fs.FileInfo) error {
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, err := src.readlink()
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	}
	in, err := src.open()
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), DefaultTempPrefix+"*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, in); err != nil {
		return err
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		return err
	}
	if err := os.Chtimes(tmp.Name(), time.Time{}, fi.ModTime()); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	done = true
	return syncDir(filepath.Dir(dst))
}

func kindOf(fi fs.FileInfo) string {
	switch {
	case fi.IsDir():
		return "directory"
	case fi.Mode()&fs.ModeSymlink != 0:
		return "symlink"
	case fi.Mode().IsRegular():
		return "file"
	}
	return "special file (" + fi.Mode().Type().String() + ")"
}
