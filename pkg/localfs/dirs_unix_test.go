//go:build linux || darwin

package localfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's CPU time so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cached reports whether WriteAtomic holds a handle on the directory rel.
func cached(f *Folder, rel string) bool {
	f.dirs.mu.Lock()
	defer f.dirs.mu.Unlock()
	_, ok := f.dirs.m[rel]
	return ok
}

func noEntries(t *testing.T, dir string) {
	t.Helper()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("something was written outside the folder, in %s: %v", dir, ents)
	}
}

// A directory whose handle is cached is swapped for a symlink to the outside: nothing is ever
// written through the symlink, whether the directory was removed or moved away.
func TestWriteAtomicSymlinkSwapAfterHandleCached(t *testing.T) {
	for _, how := range []string{"removed", "moved"} {
		t.Run(how, func(t *testing.T) {
			fx := newFixture(t, Options{})
			outside := t.TempDir()
			if err := fx.f.WriteAtomic("d/e/first.txt", strings.NewReader("1"), FileMeta{}, nil); err != nil {
				t.Fatal(err)
			}
			if !cached(fx.f, "d") || !cached(fx.f, "d/e") {
				t.Fatal("no handle cached for d and d/e")
			}
			if how == "removed" {
				os.RemoveAll(fx.abs("d"))
			} else if err := os.Rename(fx.abs("d"), fx.abs("moved")); err != nil {
				t.Fatal(err)
			}
			os.Mkdir(filepath.Join(outside, "e"), 0o755)
			if err := os.Symlink(outside, fx.abs("d")); err != nil {
				t.Fatal(err)
			}
			err := fx.f.WriteAtomic("d/e/second.txt", strings.NewReader("2"), FileMeta{}, nil)
			switch how {
			case "removed":
				// The removed directory refuses entries; opened afresh, the path has a symlink.
				if !errors.Is(err, ErrUnsafePath) {
					t.Fatalf("WriteAtomic through a swapped-in symlink = %v, want ErrUnsafePath", err)
				}
			case "moved":
				// The handle followed the directory, which is still inside the folder.
				if err != nil || readFile(t, fx.abs("moved/e/second.txt")) != "2" {
					t.Fatalf("write through a moved directory's handle: %v", err)
				}
				// Once the handles are dropped (every Sync), the symlink is seen and refused.
				if err := fx.f.Sync(); err != nil {
					t.Fatal(err)
				}
				if err := fx.f.WriteAtomic("d/e/third.txt", strings.NewReader("3"), FileMeta{}, nil); !errors.Is(err, ErrUnsafePath) {
					t.Fatalf("WriteAtomic after Sync = %v, want ErrUnsafePath", err)
				}
			}
			noEntries(t, filepath.Join(outside, "e"))
			noTemps(t, fx.root)
		})
	}
}

// A cached directory removed by someone else is opened afresh: the write succeeds, in a new
// directory at the same name; replaced by a file, it is refused.
func TestWriteAtomicCachedDirRemoved(t *testing.T) {
	fx := newFixture(t, Options{})
	for _, n := range []string{"d/a.txt", "x/a.txt"} {
		if err := fx.f.WriteAtomic(n, strings.NewReader("a"), FileMeta{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	os.RemoveAll(fx.abs("d"))
	if err := fx.f.WriteAtomic("d/b.txt", strings.NewReader("b"), FileMeta{}, &Expect{}); err != nil {
		t.Fatalf("write into a recreated directory: %v", err)
	}
	if readFile(t, fx.abs("d/b.txt")) != "b" {
		t.Fatal("d/b.txt not written")
	}
	os.RemoveAll(fx.abs("x"))
	os.WriteFile(fx.abs("x"), []byte("now a file"), 0o644)
	if err := fx.f.WriteAtomic("x/b.txt", strings.NewReader("b"), FileMeta{}, nil); !errors.Is(err, ErrUnsafePath) {
		t.Fatalf("write below a file = %v, want ErrUnsafePath", err)
	}
	noTemps(t, fx.root)
}

// A file expected to exist in a directory the user removed is a change: nothing is recreated.
func TestWriteAtomicExpectedFileInMissingDir(t *testing.T) {
	fx := newFixture(t, Options{})
	fi := fx.put(t, "gone/doc.txt", "v1", mt1)
	os.RemoveAll(fx.abs("gone"))
	if err := fx.f.WriteAtomic("gone/doc.txt", strings.NewReader("v2"), FileMeta{}, ExpectOf(fi)); !errors.Is(err, ErrChanged) {
		t.Fatalf("WriteAtomic = %v, want ErrChanged", err)
	}
	if _, err := os.Lstat(fx.abs("gone")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the removed directory was recreated: %v", err)
	}
}

// Writers share directory handles: many at once into the same directories, new ones made
// concurrently, handles dropped while in use, and the cache kept within its bound.
func TestWriteAtomicConcurrentWriters(t *testing.T) {
	fx := newFixture(t, Options{Durability: Batch})
	const writers, perWriter = 8, 150
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				// Every writer goes through the same directories, in the same order.
				name := fmt.Sprintf("shared/sub%02d/w%d-%03d.txt", i%(maxDirHandles+10), w, i)
				if err := fx.f.WriteAtomic(name, strings.NewReader(name), FileMeta{ModTime: mt1}, &Expect{}); err != nil {
					errs <- err
					return
				}
				if i%25 == 0 {
					fx.f.Release()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fx.f.dirs.mu.Lock()
	n := len(fx.f.dirs.m)
	for _, h := range fx.f.dirs.m {
		if h.refs != 0 {
			t.Errorf("handle of %s still has %d users", h.rel, h.refs)
		}
	}
	fx.f.dirs.mu.Unlock()
	if n > maxDirHandles {
		t.Fatalf("%d directory handles cached, bound %d", n, maxDirHandles)
	}
	for w := range writers {
		for i := range perWriter {
			name := fmt.Sprintf("shared/sub%02d/w%d-%03d.txt", i%(maxDirHandles+10), w, i)
			if got := readFile(t, fx.abs(name)); got != name {
				t.Fatalf("%s holds %q", name, got)
			}
		}
	}
	noTemps(t, fx.root)
	if err := fx.f.Sync(); err != nil {
		t.Fatal(err)
	}
	if cached(fx.f, "shared") || !cached(fx.f, ".") {
		t.Fatal("Sync kept directory handles, or dropped the root's")
	}
}

// Handles are closed: a Folder that wrote into many directories leaves no descriptor open.
func TestDirHandlesClosed(t *testing.T) {
	fds := func() int {
		ents, err := os.ReadDir("/dev/fd")
		if err != nil {
			t.Skipf("cannot count open descriptors: %v", err)
		}
		return len(ents)
	}
	before := fds()
	root, trash := t.TempDir(), filepath.Join(t.TempDir(), "trash")
	f, err := OpenFolder(root, Options{TrashDir: trash})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 * maxDirHandles {
		name := fmt.Sprintf("d%03d/x.txt", i)
		if err := f.WriteAtomic(name, strings.NewReader("x"), FileMeta{}, nil); err != nil {
			t.Fatal(err)
		}
		if err := f.WriteAtomic(name, strings.NewReader("y"), FileMeta{}, nil); err != nil { // replace: trash
			t.Fatal(err)
		}
	}
	f.Remove("d000/x.txt", nil) // removes d000 too, and forgets its handle
	if cached(f, "d000") {
		t.Error("handle of a removed directory kept")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if after := fds(); after != before {
		t.Fatalf("%d descriptors open before, %d after Close", before, after)
	}
	if err := f.WriteAtomic("late.txt", strings.NewReader("x"), FileMeta{}, nil); err == nil {
		t.Fatal("WriteAtomic after Close succeeded")
	}
}

// The rename that puts a new file in place never replaces one created since the last check.
func TestRenameNoReplace(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"tmp": "incoming", "user.txt": "user's"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fd := int(d.Fd())
	err = renameNoReplace(fd, "tmp", "user.txt")
	if errors.Is(err, errNoReplace) {
		t.Skipf("this file system cannot rename without replacing: %v", err)
	}
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("rename onto an existing file: %v, want EEXIST", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "user.txt")); string(b) != "user's" {
		t.Fatalf("the existing file was replaced: %q", b)
	}
	if err := renameNoReplace(fd, "tmp", "new.txt"); err != nil {
		t.Fatalf("rename to a free name: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "new.txt")); string(b) != "incoming" {
		t.Fatalf("new.txt holds %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "tmp")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the temp is still there: %v", err)
	}
}
