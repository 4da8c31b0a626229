// Package localfs is the only place escale writes to a synced folder. Its promises: a name from
// the relay never leads outside the folder (ValidName, Resolve); a file is only ever replaced
// atomically, by renaming a complete temp file from the same directory over it (WriteAtomic);
// and whatever is replaced or deleted is in the trash first (Trash). A file the user changed
// after the engine planned over it is left alone (ErrChanged).
package localfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// DefaultTempPrefix starts the names of escale's temp files; the scanner skips them.
const DefaultTempPrefix = ".escale-tmp-"

var (
	// ErrChanged means the local file is no longer what the engine planned over: the user
	// changed it meanwhile. Nothing was touched; the next scan picks the change up.
	ErrChanged = errors.New("local file changed since the sync planned over it")
	// ErrUnsafePath means a name would lead through a symlink or a non-directory.
	ErrUnsafePath = errors.New("unsafe path")
)

// Options configure a Folder.
type Options struct {
	TrashDir   string           // required; outside the folder (escale keeps it in its state directory)
	TempPrefix string           // default DefaultTempPrefix
	Durability Durability       // PerFile (default) or Batch
	Now        func() time.Time // clock for trash stamps and temp ages; default time.Now
}

// FileMeta is what WriteAtomic sets on the new file.
type FileMeta struct {
	// Mode's permission bits are applied, except that the owner can always read and write
	// (escale must be able to replace the file later) and nothing from the relay makes a file
	// world-writable, setuid, setgid or sticky. 0 means 0644.
	Mode    os.FileMode
	ModTime time.Time // zero leaves the time of writing
}

// Expect is what the engine saw when it planned a change. nil means "no check"; &Expect{}
// (Exists false) means "there must be nothing at that name".
type Expect struct {
	Exists  bool
	Size    int64
	ModTime time.Time
	Inode   uint64 // 0: not checked (Windows, or unknown)
}

// ExpectOf builds the Expect matching fi, an Lstat result.
func ExpectOf(fi fs.FileInfo) *Expect {
	return &Expect{Exists: true, Size: fi.Size(), ModTime: fi.ModTime(), Inode: fileInode(fi)}
}

// Inode is fi's inode number, 0 where the platform does not report one.
func Inode(fi fs.FileInfo) uint64 { return fileInode(fi) }

func (e *Expect) matches(fi fs.FileInfo, exists bool) bool {
	switch {
	case e == nil:
		return true
	case !e.Exists || !exists:
		return e.Exists == exists
	case fi.IsDir(), fi.Size() != e.Size, !fi.ModTime().Equal(e.ModTime):
		return false
	}
	ino := fileInode(fi)
	return e.Inode == 0 || ino == 0 || ino == e.Inode
}

// Folder is a synced folder's root. Writes go through an os.Root, or on Linux and macOS
// WriteAtomic through handles on the folder's directories opened without following any symlink
// (dirs_unix.go), so even a symlink swapped in after Resolve checked a path cannot lead a write
// outside the folder. A Folder is safe for concurrent use.
type Folder struct {
	root   string
	real   string // root with symlinks resolved: where CleanTemps walks
	dir    *os.Root
	dirs   *dirCache // WriteAtomic's directory handles; nil where unsupported
	bufs   sync.Pool // *[]byte copy buffers for WriteAtomic
	prefix string
	now    func() time.Time
	trash  *Trash
	fl     *flusher

	mu       sync.Mutex
	inflight map[string]struct{} // temp files being written (OS-relative paths)
}

// OpenFolder opens the synced folder at root, which must exist and be a directory: a missing
// root (an unmounted disk) must stop the sync, never look like "every file was deleted".
func OpenFolder(root string, opts Options) (*Folder, error) {
	if root == "" {
		return nil, errors.New("no folder path given: set `path` for the repository in the configuration")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("folder %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("synced folder %s does not exist; if it is on a removable or network disk, mount it, otherwise create it or fix `path` in the configuration: %w", abs, err)
	}
	if err != nil {
		return nil, fmt.Errorf("synced folder %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("synced folder %s is not a directory; fix `path` in the configuration", abs)
	}
	if opts.TempPrefix == "" {
		opts.TempPrefix = DefaultTempPrefix
	}
	if strings.ContainsAny(opts.TempPrefix, `/\`) {
		return nil, fmt.Errorf("temp prefix %q must not contain a path separator", opts.TempPrefix)
	}
	fl := &flusher{batch: opts.Durability == Batch}
	trash, err := newTrash(opts.TrashDir, opts.Now, fl)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("synced folder %s: %w", abs, err)
	}
	if err := checkTrashOutside(real, trash.dir); err != nil {
		return nil, err
	}
	dir, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("open synced folder %s: %w", abs, err)
	}
	dirs, err := newDirCache(abs)
	if err != nil {
		dir.Close()
		return nil, fmt.Errorf("open synced folder %s: %w", abs, err)
	}
	f := &Folder{root: abs, real: real, dir: dir, dirs: dirs, prefix: opts.TempPrefix, now: trash.now, trash: trash, fl: fl,
		inflight: map[string]struct{}{}}
	f.bufs.New = func() any { b := make([]byte, 32<<10); return &b }
	return f, nil
}

// checkTrashOutside refuses a trash inside the folder: the scanner would sync it as files.
func checkTrashOutside(root, trash string) error {
	t, err := filepath.EvalSymlinks(trash)
	if err != nil {
		return fmt.Errorf("check trash location: %w", err)
	}
	if rel, err := filepath.Rel(root, t); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("trash directory %s is inside the synced folder %s, where it would be synced; put it outside (escale's state directory)", trash, root)
	}
	return nil
}

// Close releases the folder's handles.
func (f *Folder) Close() error {
	f.dirs.close()
	return f.dir.Close()
}

// Release closes the directory handles WriteAtomic keeps open between calls. Sync and Close
// release them too; a caller writing a batch of files may call it at the end of the batch so
// that no handle outlives the batch. Writes in flight are not disturbed.
func (f *Folder) Release() { f.dirs.releaseAll() }

// Root is the folder's absolute path.
func (f *Folder) Root() string { return f.root }

// Trash is where this folder's replaced and deleted files go.
func (f *Folder) Trash() *Trash { return f.trash }

// Resolve maps a valid name to an absolute path, refusing any name whose existing parent
// components include a symlink or a non-directory (each is Lstat'ed; no link is followed).
// The last component may be anything: escale replaces or moves it, never writes through it.
func (f *Folder) Resolve(name string) (string, error) {
	if err := ValidName(name, runtime.GOOS); err != nil {
		return "", err
	}
	parent := path.Dir(name)
	if parent != "." {
		cur := ""
		for seg := range strings.SplitSeq(parent, "/") {
			cur = path.Join(cur, seg)
			fi, err := f.dir.Lstat(filepath.FromSlash(cur))
			if errors.Is(err, fs.ErrNotExist) {
				break // WriteAtomic creates the rest
			}
			if err != nil {
				return "", fmt.Errorf("resolve %s: %w", name, err)
			}
			if err := parentProblem(name, cur, fi); err != nil {
				return "", err
			}
		}
	}
	return filepath.Join(f.root, filepath.FromSlash(name)), nil
}

func parentProblem(name, parent string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: %s: %q is a symlink and escale never writes through symlinks; replace it with a real directory or exclude it", ErrUnsafePath, name, parent)
	case !fi.IsDir():
		return fmt.Errorf("%w: %s: %q is a %s, not a directory; rename one of them", ErrUnsafePath, name, parent, kindOf(fi))
	}
	return nil
}

// lstat reports what is at name now; a missing file is not an error.
func (f *Folder) lstat(name string) (fs.FileInfo, bool, error) {
	fi, err := f.dir.Lstat(filepath.FromSlash(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, f.ioErr("read", name, err)
	}
	return fi, true, nil
}

func (f *Folder) changed(name string) error {
	return fmt.Errorf("%s was changed on this machine after the sync planned over it; it was left as it is and the next scan will pick it up: %w", name, ErrChanged)
}

// ioErr words the errors a user can act on.
func (f *Folder) ioErr(op, name string, err error) error {
	abs := filepath.Join(f.root, filepath.FromSlash(name))
	switch {
	case isNoSpace(err):
		return fmt.Errorf("no space left on %s while writing %s; nothing was replaced — free some space, then sync again: %w", mountPoint(filepath.Dir(abs)), name, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("permission denied: cannot %s %s; give this user write access to %s: %w", op, abs, filepath.Dir(abs), err)
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

// mkdirs creates the missing directories of dir (slash-separated, "." for the root) and
// returns the absolute paths it created.
func (f *Folder) mkdirs(dir string) ([]string, error) {
	if dir == "." {
		return nil, nil
	}
	created, err := mkdirChain(filepath.FromSlash(dir),
		func(p string) error { return f.dir.Mkdir(p, 0o755) },
		f.dir.Lstat)
	if errors.Is(err, errNotDir) {
		return nil, fmt.Errorf("%w: cannot create directory %s: %v", ErrUnsafePath, dir, err)
	}
	if err != nil {
		return nil, f.ioErr("create directory", dir, err)
	}
	for i := range created {
		created[i] = filepath.Join(f.root, created[i])
	}
	return created, nil
}

var errNotDir = errors.New("a path component exists and is not a directory")

// mkdirChain creates each missing component of rel (OS-separated), using mkdir and lstat on
// relative paths, and refuses components that exist as anything but a real directory.
func mkdirChain(rel string, mkdir func(string) error, lstat func(string) (fs.FileInfo, error)) ([]string, error) {
	var created []string
	cur := ""
	for seg := range strings.SplitSeq(rel, string(filepath.Separator)) {
		if seg == "" || seg == "." {
			continue
		}
		cur = filepath.Join(cur, seg)
		err := mkdir(cur)
		if err == nil {
			created = append(created, cur)
			continue
		}
		if !errors.Is(err, fs.ErrExist) {
			return created, err
		}
		fi, lerr := lstat(cur)
		if lerr != nil {
			return created, lerr
		}
		if !fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0 {
			return created, fmt.Errorf("%w: %s is a %s", errNotDir, cur, kindOf(fi))
		}
	}
	return created, nil
}

// durableDirs makes dir's entries durable, and the entries of each created directory in its parent.
func (f *Folder) durableDirs(dir string, created []string) error {
	for _, c := range created {
		if err := f.fl.dir(filepath.Dir(c)); err != nil {
			return err
		}
	}
	return f.fl.dir(dir)
}

// Sync makes everything written since the last Sync durable: on Linux one syncfs per
// filesystem (folder and trash), elsewhere an fsync of each touched file and directory. In
// PerFile mode everything already is, and Sync does nothing. Batch callers call it before
// they acknowledge anything. Sync also drops WriteAtomic's directory handles (Release): it
// closes every round, so none outlives one.
func (f *Folder) Sync() error {
	f.Release()
	if !f.fl.batch {
		return nil
	}
	return f.fl.flush(f.root, f.trash.dir)
}

// mountPoint names the filesystem holding p, for error messages: the topmost ancestor on the
// same device, or p itself where devices are not reported.
func mountPoint(p string) string {
	fi, err := os.Stat(p)
	if err != nil {
		return p
	}
	dev, ok := fileDevice(fi)
	if !ok {
		if v := filepath.VolumeName(p); v != "" {
			return v
		}
		return p
	}
	cur := p
	for {
		parent := filepath.Dir(cur)
		if parent == cur {
			return cur
		}
		pfi, err := os.Stat(parent)
		if err != nil {
			return cur
		}
		if pdev, _ := fileDevice(pfi); pdev != dev {
			return cur
		}
		cur = parent
	}
}
