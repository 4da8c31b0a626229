//go:build linux || darwin

package localfs

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Directory handles. WriteAtomic works relative to an open descriptor of the target's
// directory, cached between calls, so that a file costs a few *at calls on one path element
// each; through os.Root, every create, chtimes, lstat and rename walked the whole relative path
// again (an openat and a close per component).
//
// Why a cached handle cannot lead a write outside the folder:
//   - it is opened one element at a time from the folder's root with O_NOFOLLOW|O_DIRECTORY:
//     it is a real directory that was inside the folder when opened, reached through no symlink
//     (a symlinked parent is refused, as Resolve refuses it);
//   - every call made through it names one element (a temp's random name, or the target's base
//     name, which ValidName keeps free of separators and dot-dot) and follows no symlink
//     (O_CREAT|O_EXCL, AT_SYMLINK_NOFOLLOW, O_NOFOLLOW; rename and link never follow), so a
//     symlink swapped in later, at any level, is never followed: the handle stays on the
//     directory it was opened on;
//   - escale never moves a directory, and forgets the handle of a directory it removes; a
//     directory removed by anyone else refuses new entries (ENOENT), and WriteAtomic then opens
//     the path afresh, once.
//
// What remains: if another program moves a directory out of the folder while its handle is
// cached, a write can land in the moved directory, the same as if the move had come just after
// the write. Sync (the end of every round), Release and Close drop the handles, so this window
// lasts one round at most.

// maxDirHandles bounds the open directory handles of one Folder: the writers of a manifest
// touch a few directories at a time (files come in path order).
const maxDirHandles = 64

type dirHandle struct {
	fd   int
	rel  string // slash-separated, "." for the root
	abs  string
	refs int    // users now (guarded by dirCache.mu)
	used uint64 // last use, for eviction
	gone bool   // out of the cache: closed at its last release
}

// dirCache holds a Folder's directory handles; safe for concurrent use.
type dirCache struct {
	mu     sync.Mutex
	m      map[string]*dirHandle
	tick   uint64
	closed bool
}

// newDirCache opens root (following a symlink there, as os.OpenRoot does: the folder itself
// may be reached through one).
func newDirCache(root string) (*dirCache, error) {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	return &dirCache{m: map[string]*dirHandle{".": {fd: fd, rel: ".", abs: root}}}, nil
}

// acquire returns the handle of the folder's directory rel (slash-separated), opening it if it
// is not cached, and with create making its missing parts (mode 0755): created lists those, as
// absolute paths. name (the file to write) is for messages. The caller releases the handle.
func (c *dirCache) acquire(rel, name string, create bool) (*dirHandle, []string, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, nil, os.ErrClosed
	}
	if h := c.m[rel]; h != nil {
		h.refs++
		c.tick++
		h.used = c.tick
		c.mu.Unlock()
		return h, nil, nil
	}
	c.mu.Unlock()
	parent, created, err := c.acquire(path.Dir(rel), name, create)
	if err != nil {
		return nil, created, err
	}
	defer c.release(parent)
	seg := path.Base(rel)
	fd, err := openDirAt(parent.fd, seg)
	if err == unix.ENOENT && create {
		err = unix.Mkdirat(parent.fd, seg, 0o755)
		if err == nil {
			created = append(created, filepath.Join(parent.abs, seg))
		}
		if err == nil || err == unix.EEXIST { // EEXIST: another writer made it meanwhile
			fd, err = openDirAt(parent.fd, seg)
		}
	}
	if err != nil {
		// O_NOFOLLOW|O_DIRECTORY fails on a symlink (ELOOP, or ENOTDIR) and on a file (ENOTDIR).
		if err == unix.ELOOP || err == unix.ENOTDIR {
			if fi, serr := statAt(parent.fd, seg); serr == nil {
				if perr := parentProblem(name, rel, fi); perr != nil {
					return nil, created, perr
				}
			}
		}
		return nil, created, &fs.PathError{Op: "open directory", Path: rel, Err: err}
	}
	return c.insert(&dirHandle{fd: fd, rel: rel, abs: filepath.Join(parent.abs, seg)}), created, nil
}

func openDirAt(dirfd int, name string) (int, error) {
	return retryEINTR(func() (int, error) {
		return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
}

// insert caches a handle just opened, or returns the one another writer cached meanwhile.
func (c *dirCache) insert(h *dirHandle) *dirHandle {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	if old := c.m[h.rel]; old != nil && !c.closed {
		unix.Close(h.fd)
		old.refs++
		old.used = c.tick
		return old
	}
	h.refs, h.used = 1, c.tick
	if c.closed {
		h.gone = true // closed at its release
		return h
	}
	c.m[h.rel] = h
	if len(c.m) > maxDirHandles {
		var victim *dirHandle
		for _, o := range c.m {
			if o.refs == 0 && o.rel != "." && (victim == nil || o.used < victim.used) {
				victim = o
			}
		}
		if victim != nil {
			c.dropLocked(victim)
		}
	}
	return h
}

func (c *dirCache) release(h *dirHandle) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h.refs--
	if h.gone && h.refs == 0 {
		unix.Close(h.fd)
	}
}

func (c *dirCache) dropLocked(h *dirHandle) {
	delete(c.m, h.rel)
	h.gone = true
	if h.refs == 0 {
		unix.Close(h.fd)
	}
}

// forget drops the handles of rel and of everything below it: rel was removed.
func (c *dirCache) forget(rel string) {
	if c == nil || rel == "." {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, h := range c.m {
		if k == rel || strings.HasPrefix(k, rel+"/") {
			c.dropLocked(h)
		}
	}
}

// releaseAll drops every handle but the root's; those in use close when released.
func (c *dirCache) releaseAll() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.m {
		if h.rel != "." {
			c.dropLocked(h)
		}
	}
}

func (c *dirCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, h := range c.m {
		c.dropLocked(h)
	}
}

func retryEINTR[T any](f func() (T, error)) (T, error) {
	for {
		v, err := f()
		if err != unix.EINTR {
			return v, err
		}
	}
}

// statInfo is an fstatat result as an fs.FileInfo; its Sys is the *unix.Stat_t.
type statInfo struct {
	name string
	st   unix.Stat_t
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) Mode() fs.FileMode  { return FileMode(uint32(s.st.Mode)) }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s *statInfo) IsDir() bool        { return uint32(s.st.Mode)&unix.S_IFMT == unix.S_IFDIR }
func (s *statInfo) Sys() any           { return &s.st }

// statAt lstats name, one path element, in the directory dirfd.
func statAt(dirfd int, name string) (*statInfo, error) {
	s := &statInfo{name: name}
	if _, err := retryEINTR(func() (struct{}, error) {
		return struct{}{}, unix.Fstatat(dirfd, name, &s.st, unix.AT_SYMLINK_NOFOLLOW)
	}); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	return s, nil
}

// lstatAt reports what is at name in d now; a missing file is not an error.
func lstatAt(d *dirHandle, name string) (*statInfo, bool, error) {
	s, err := statAt(d.fd, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	return s, err == nil, err
}

// sameInode reports whether two statAt results are one file.
func sameInode(a, b *statInfo) bool { return a.st.Dev == b.st.Dev && a.st.Ino == b.st.Ino }

// FileMode converts st_mode as package os does (fillFileStatFromSys), so stats taken with
// fstatat compare equal to os.Lstat's modes.
func FileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// entrySource is a file in an open directory, for the trash.
type entrySource struct {
	d    *dirHandle
	name string
	abs  string
}

func (e entrySource) String() string              { return e.abs }
func (e entrySource) lstat() (fs.FileInfo, error) { return statAt(e.d.fd, e.name) }

func (e entrySource) link(dst string) error {
	return pathErr("link", e.abs, unix.Linkat(e.d.fd, e.name, unix.AT_FDCWD, dst, 0))
}

func (e entrySource) rename(dst string) error {
	return pathErr("rename", e.abs, unix.Renameat(e.d.fd, e.name, unix.AT_FDCWD, dst))
}

func (e entrySource) remove() error {
	return pathErr("remove", e.abs, unix.Unlinkat(e.d.fd, e.name, 0))
}

func (e entrySource) open() (*os.File, error) {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Openat(e.d.fd, e.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, pathErr("open", e.abs, err)
	}
	return os.NewFile(uintptr(fd), e.abs), nil
}

func (e entrySource) readlink() (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(e.d.fd, e.name, buf)
		if err != nil {
			return "", pathErr("readlink", e.abs, err)
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

func pathErr(op, p string, err error) error {
	if err == nil {
		return nil
	}
	return &fs.PathError{Op: op, Path: p, Err: err}
}

// fdWriter writes to a file descriptor the caller owns.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(w), p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}
