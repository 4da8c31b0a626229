package localfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

type fixture struct {
	root, trash string
	f           *Folder
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	root, trash := t.TempDir(), filepath.Join(t.TempDir(), "trash")
	opts.TrashDir = trash
	f, err := OpenFolder(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &fixture{root: root, trash: trash, f: f}
}

func (fx *fixture) abs(name string) string { return filepath.Join(fx.root, filepath.FromSlash(name)) }

func (fx *fixture) put(t *testing.T, name, content string, mtime time.Time) fs.FileInfo {
	t.Helper()
	p := fx.abs(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// noTemps fails if any escale temp file is left under dir.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && IsTemp(d.Name()) {
			t.Errorf("temp file left behind: %s", p)
		}
		return nil
	})
}

func trashed(t *testing.T, fx *fixture) map[string]TrashEntry {
	t.Helper()
	list, err := fx.f.Trash().List()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]TrashEntry{}
	for _, e := range list {
		if _, dup := m[e.Name]; dup {
			t.Fatalf("%s is in the trash twice", e.Name)
		}
		m[e.Name] = e
	}
	return m
}

var mt1 = time.Date(2024, 3, 1, 10, 0, 0, 123456789, time.UTC)

func TestOpenFolderRefusesMissingRoot(t *testing.T) {
	trash := t.TempDir()
	missing := filepath.Join(t.TempDir(), "unmounted")
	_, err := OpenFolder(missing, Options{TrashDir: trash})
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "mount") {
		t.Fatalf("missing root: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := OpenFolder(file, Options{TrashDir: trash}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("file as root: %v", err)
	}
	root := t.TempDir()
	if _, err := OpenFolder(root, Options{TrashDir: filepath.Join(root, ".trash")}); err == nil || !strings.Contains(err.Error(), "inside the synced folder") {
		t.Fatalf("trash inside the folder: %v", err)
	}
	if _, err := OpenFolder(root, Options{}); err == nil {
		t.Fatal("no trash directory accepted")
	}
}

func TestResolveRefusesSymlinksAndFiles(t *testing.T) {
	fx := newFixture(t, Options{})
	outside := t.TempDir()
	if err := os.Symlink(outside, fx.abs("out")); err != nil {
		t.Fatal(err)
	}
	fx.put(t, "file", "x", mt1)
	if err := os.Symlink(fx.abs("file"), fx.abs("flink")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(fx.abs("real"), 0o755)
	if err := os.Symlink("real", fx.abs("inner")); err != nil { // stays inside, still refused
		t.Fatal(err)
	}
	for _, name := range []string{"out/x", "out/deep/x", "flink/x", "file/x", "inner/x"} {
		if _, err := fx.f.Resolve(name); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("Resolve(%q) = %v, want ErrUnsafePath", name, err)
		}
		err := fx.f.WriteAtomic(name, strings.NewReader("evil"), FileMeta{}, nil)
		if !errors.Is(err, ErrUnsafePath) {
			t.Errorf("WriteAtomic(%q) = %v, want ErrUnsafePath", name, err)
		}
		if err := fx.f.Remove(name, nil); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("Remove(%q) = %v, want ErrUnsafePath", name, err)
		}
		if err := fx.f.Rename("file", name, nil); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("Rename to %q = %v, want ErrUnsafePath", name, err)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("something was written outside the folder: %v", ents)
	}
	for _, name := range []string{"../x", "/etc/passwd", "a/./b"} {
		var ne *NameError
		if _, err := fx.f.Resolve(name); !errors.As(err, &ne) {
			t.Errorf("Resolve(%q) = %v, want a *NameError", name, err)
		}
	}
	got, err := fx.f.Resolve("real/new/x.txt")
	if err != nil || got != fx.abs("real/new/x.txt") {
		t.Fatalf("Resolve of a plain name = %q, %v", got, err)
	}
	// The last component may be a symlink: it is replaced, never written through.
	if err := fx.f.WriteAtomic("out", strings.NewReader("file now"), FileMeta{}, nil); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(fx.abs("out")); !fi.Mode().IsRegular() {
		t.Fatalf("symlink not replaced by a file: %v", fi.Mode())
	}
	if e, ok := trashed(t, fx)["out"]; !ok || e.Mode&fs.ModeSymlink == 0 {
		t.Fatalf("replaced symlink not in the trash as a symlink: %+v", e)
	}
}

func TestWriteAtomicNewAndReplace(t *testing.T) {
	fx := newFixture(t, Options{})
	if err := fx.f.WriteAtomic("a/b/new.txt", strings.NewReader("v1"), FileMeta{Mode: 0o644, ModTime: mt1}, &Expect{}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, fx.abs("a/b/new.txt")); got != "v1" {
		t.Fatalf("content %q", got)
	}
	if fi, _ := os.Stat(fx.abs("a/b")); fi.Mode().Perm() != 0o755 {
		t.Errorf("parent dir mode %v, want 0755", fi.Mode().Perm())
	}
	if len(trashed(t, fx)) != 0 {
		t.Fatal("a new file put something in the trash")
	}
	fi, _ := os.Lstat(fx.abs("a/b/new.txt"))
	mt2 := mt1.Add(time.Hour)
	if err := fx.f.WriteAtomic("a/b/new.txt", strings.NewReader("version two"), FileMeta{Mode: 0o644, ModTime: mt2}, ExpectOf(fi)); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, fx.abs("a/b/new.txt")); got != "version two" {
		t.Fatalf("content %q", got)
	}
	old, ok := trashed(t, fx)["a/b/new.txt"]
	if !ok {
		t.Fatal("old version not in the trash")
	}
	if got := readFile(t, old.Path); got != "v1" || !old.ModTime.Equal(fi.ModTime()) || old.Size != 2 {
		t.Fatalf("trashed version: %q mtime %v size %d", got, old.ModTime, old.Size)
	}
	if !strings.HasPrefix(old.Path, fx.trash+string(filepath.Separator)) {
		t.Fatalf("trashed to %s, outside the trash %s", old.Path, fx.trash)
	}
	// nil expect: no check, but the old version is still kept.
	if err := fx.f.WriteAtomic("a/b/new.txt", strings.NewReader("three"), FileMeta{}, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(mustList(t, fx.f.Trash())); n != 2 {
		t.Fatalf("%d versions in the trash, want 2", n)
	}
	noTemps(t, fx.root)
}

func mustList(t *testing.T, tr *Trash) []TrashEntry {
	t.Helper()
	l, err := tr.List()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fsTimeResolution finds how finely dir's filesystem stores mtimes.
func fsTimeResolution(t *testing.T, dir string) time.Duration {
	p := filepath.Join(dir, "probe")
	os.WriteFile(p, nil, 0o644)
	defer os.Remove(p)
	want := time.Date(2020, 1, 1, 0, 0, 0, 123456789, time.UTC)
	os.Chtimes(p, want, want)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, res := range []time.Duration{time.Nanosecond, time.Microsecond, time.Millisecond, 10 * time.Millisecond, time.Second, 2 * time.Second} {
		if fi.ModTime().Equal(want.Truncate(res)) {
			return res
		}
	}
	t.Fatalf("cannot work out the mtime resolution: wrote %v, read %v", want, fi.ModTime())
	return 0
}

func TestWriteAtomicMtimeAndMode(t *testing.T) {
	fx := newFixture(t, Options{})
	res := fsTimeResolution(t, fx.root)
	t.Logf("filesystem mtime resolution: %v", res)
	cases := []struct {
		mode, want os.FileMode
	}{
		{0o755, 0o755},
		{0o644, 0o644},
		{0o600, 0o600},
		{0o700, 0o700},
		{0, 0o644},
		{0o444, 0o644},                  // the owner can always write
		{0o777, 0o775},                  // never world-writable
		{os.ModeSetuid | 0o755, 0o755},  // never setuid
		{os.ModeSticky | 0o1644, 0o644}, // never sticky
		{os.ModeSetgid | 0o2750, 0o750}, // never setgid
	}
	for i, c := range cases {
		name := "f" + string(rune('a'+i))
		if err := fx.f.WriteAtomic(name, strings.NewReader("#!/bin/sh\n"), FileMeta{Mode: c.mode, ModTime: mt1}, nil); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(fx.abs(name))
		if err != nil {
			t.Fatal(err)
		}
		if runtime.GOOS != "windows" && fi.Mode() != c.want {
			t.Errorf("mode %v written as %v, want %v", c.mode, fi.Mode(), c.want)
		}
		if !fi.ModTime().Equal(mt1.Truncate(res)) {
			t.Errorf("mtime %v, want %v", fi.ModTime(), mt1.Truncate(res))
		}
	}
	// The exec bit follows the incoming mode on replace, both ways.
	fx.f.WriteAtomic("fa", strings.NewReader("x"), FileMeta{Mode: 0o644, ModTime: mt1}, nil)
	if fi, _ := os.Lstat(fx.abs("fa")); fi.Mode()&0o111 != 0 {
		t.Errorf("exec bit kept after a non-exec version: %v", fi.Mode())
	}
	fx.f.WriteAtomic("fb", strings.NewReader("x"), FileMeta{Mode: 0o755, ModTime: mt1}, nil)
	if fi, _ := os.Lstat(fx.abs("fb")); fi.Mode()&0o111 != 0o111 {
		t.Errorf("exec bit lost: %v", fi.Mode())
	}
}

func TestWriteAtomicErrChanged(t *testing.T) {
	fx := newFixture(t, Options{})
	planned := fx.put(t, "doc.txt", "original", mt1)
	plan := ExpectOf(planned)

	edits := []struct {
		what string
		edit func()
	}{
		{"content and size", func() { os.WriteFile(fx.abs("doc.txt"), []byte("user edit, longer"), 0o644) }},
		{"same size, new mtime", func() {
			os.WriteFile(fx.abs("doc.txt"), []byte("ORIGINAL"), 0o644)
		}},
		{"same size and mtime, new inode (editor's atomic save)", func() {
			tmp := fx.abs("doc.tmp")
			os.WriteFile(tmp, []byte("Original"), 0o644)
			os.Chtimes(tmp, mt1, mt1)
			os.Rename(tmp, fx.abs("doc.txt"))
		}},
		{"deleted", func() { os.Remove(fx.abs("doc.txt")) }},
	}
	for _, e := range edits {
		fx.put(t, "doc.txt", "original", mt1)
		fi, _ := os.Lstat(fx.abs("doc.txt"))
		plan = ExpectOf(fi)
		e.edit()
		before, _ := os.ReadFile(fx.abs("doc.txt"))
		err := fx.f.WriteAtomic("doc.txt", strings.NewReader("incoming"), FileMeta{ModTime: mt1}, plan)
		if !errors.Is(err, ErrChanged) {
			t.Errorf("%s: WriteAtomic = %v, want ErrChanged", e.what, err)
		}
		after, _ := os.ReadFile(fx.abs("doc.txt"))
		if !bytes.Equal(before, after) {
			t.Errorf("%s: user's file touched: %q → %q", e.what, before, after)
		}
		if err := fx.f.Remove("doc.txt", plan); e.what != "deleted" && !errors.Is(err, ErrChanged) {
			t.Errorf("%s: Remove = %v, want ErrChanged", e.what, err)
		}
		if err := fx.f.Rename("doc.txt", "moved.txt", plan); !errors.Is(err, ErrChanged) {
			t.Errorf("%s: Rename = %v, want ErrChanged", e.what, err)
		}
	}
	// A file that appeared where the plan expected none.
	fx.put(t, "fresh.txt", "user's", mt1)
	if err := fx.f.WriteAtomic("fresh.txt", strings.NewReader("incoming"), FileMeta{}, &Expect{}); !errors.Is(err, ErrChanged) {
		t.Fatalf("file appeared: %v", err)
	}
	if got := readFile(t, fx.abs("fresh.txt")); got != "user's" {
		t.Fatalf("user's new file touched: %q", got)
	}
	if len(trashed(t, fx)) != 0 {
		t.Fatal("ErrChanged put something in the trash")
	}
	noTemps(t, fx.root)
}

// A change made while the content streams in is caught by the second check, before the rename.
func TestWriteAtomicChangeDuringTransfer(t *testing.T) {
	fx := newFixture(t, Options{})
	fi := fx.put(t, "doc.txt", "original", mt1)
	pr, pw := io.Pipe()
	done := make(chan error)
	go func() { done <- fx.f.WriteAtomic("doc.txt", pr, FileMeta{}, ExpectOf(fi)) }()
	pw.Write([]byte("first half "))
	os.WriteFile(fx.abs("doc.txt"), []byte("user typed this"), 0o644)
	pw.Write([]byte("second half"))
	pw.Close()
	if err := <-done; !errors.Is(err, ErrChanged) {
		t.Fatalf("WriteAtomic = %v, want ErrChanged", err)
	}
	if got := readFile(t, fx.abs("doc.txt")); got != "user typed this" {
		t.Fatalf("user's edit lost: %q", got)
	}
	noTemps(t, fx.root)
}

func TestWriteAtomicReadErrorLeavesTargetIntact(t *testing.T) {
	fx := newFixture(t, Options{})
	fi := fx.put(t, "doc.txt", "original", mt1)
	broken := io.MultiReader(strings.NewReader("partial"), iotestErrReader{errors.New("connection reset")})
	err := fx.f.WriteAtomic("doc.txt", broken, FileMeta{}, ExpectOf(fi))
	if err == nil || !strings.Contains(err.Error(), "connection reset") || !strings.Contains(err.Error(), "nothing was replaced") {
		t.Fatalf("WriteAtomic = %v", err)
	}
	if got := readFile(t, fx.abs("doc.txt")); got != "original" {
		t.Fatalf("target changed: %q", got)
	}
	noTemps(t, fx.root)
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

func TestWriteAtomicRefusesDirectory(t *testing.T) {
	fx := newFixture(t, Options{})
	os.MkdirAll(fx.abs("d/inner"), 0o755)
	if err := fx.f.WriteAtomic("d", strings.NewReader("x"), FileMeta{}, nil); err == nil {
		t.Fatal("a directory was replaced by a file")
	}
	if fi, _ := os.Stat(fx.abs("d/inner")); fi == nil || !fi.IsDir() {
		t.Fatal("directory damaged")
	}
	noTemps(t, fx.root)
}

func TestRemove(t *testing.T) {
	fx := newFixture(t, Options{})
	fi := fx.put(t, "a/b/c.txt", "bye", mt1)
	fx.put(t, "a/keep.txt", "stay", mt1)
	if err := fx.f.Remove("a/b/c.txt", ExpectOf(fi)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(fx.abs("a/b")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("empty parent a/b left: %v", err)
	}
	if _, err := os.Lstat(fx.abs("a/keep.txt")); err != nil {
		t.Fatalf("non-empty parent damaged: %v", err)
	}
	e, ok := trashed(t, fx)["a/b/c.txt"]
	if !ok || readFile(t, e.Path) != "bye" || !e.ModTime.Equal(fi.ModTime()) {
		t.Fatalf("trash entry %+v", e)
	}
	// Gone already: the goal holds.
	if err := fx.f.Remove("a/b/c.txt", ExpectOf(fi)); err != nil {
		t.Fatalf("removing a missing file: %v", err)
	}
	// The root itself is never removed, even when emptied.
	fi = fx.put(t, "solo.txt", "x", mt1)
	os.Remove(fx.abs("a/keep.txt"))
	if err := fx.f.Remove("solo.txt", ExpectOf(fi)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fx.root); err != nil {
		t.Fatal("root removed")
	}
	// A symlink goes to the trash as a symlink; its target is untouched.
	os.Symlink("target-does-not-matter", fx.abs("ln"))
	if err := fx.f.Remove("ln", nil); err != nil {
		t.Fatal(err)
	}
	if e := trashed(t, fx)["ln"]; e.Mode&fs.ModeSymlink == 0 {
		t.Fatalf("symlink trashed as %v", e.Mode)
	}
	// An empty directory is removed; a non-empty one refused.
	os.MkdirAll(fx.abs("full/x"), 0o755)
	if err := fx.f.Remove("full", nil); err == nil {
		t.Fatal("non-empty directory removed")
	}
	if err := fx.f.Remove("full/x", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(fx.abs("full")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("emptied parent kept")
	}
}

func TestRename(t *testing.T) {
	fx := newFixture(t, Options{})
	fi := fx.put(t, "old/name.txt", "content", mt1)
	if err := fx.f.Rename("old/name.txt", "new/dir/name.txt", ExpectOf(fi)); err != nil {
		t.Fatal(err)
	}
	moved, err := os.Lstat(fx.abs("new/dir/name.txt"))
	if err != nil || !os.SameFile(fi, moved) || !moved.ModTime().Equal(fi.ModTime()) {
		t.Fatalf("not moved as the same file: %v", err)
	}
	if _, err := os.Lstat(fx.abs("old")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("emptied source dir kept")
	}
	// An existing target is kept in the trash, never overwritten silently.
	src := fx.put(t, "src.txt", "incoming", mt1)
	fx.put(t, "dst.txt", "precious", mt1)
	if err := fx.f.Rename("src.txt", "dst.txt", ExpectOf(src)); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, fx.abs("dst.txt")); got != "incoming" {
		t.Fatalf("dst = %q", got)
	}
	if e, ok := trashed(t, fx)["dst.txt"]; !ok || readFile(t, e.Path) != "precious" {
		t.Fatal("overwritten target not in the trash")
	}
	if _, err := os.Lstat(fx.abs("src.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("source still there")
	}
	// Two hard links to one file: the move still happens (rename(2) alone would do nothing).
	fx.put(t, "h1", "same", mt1)
	os.Link(fx.abs("h1"), fx.abs("h2"))
	if err := fx.f.Rename("h1", "h2", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(fx.abs("h1")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("hard-linked source still there")
	}
	if readFile(t, fx.abs("h2")) != "same" {
		t.Fatal("hard-linked target damaged")
	}
	// A missing source is a local change.
	if err := fx.f.Rename("nope", "x", nil); !errors.Is(err, ErrChanged) {
		t.Fatalf("missing source: %v", err)
	}
	// Directories are moved file by file by the engine, not here.
	os.MkdirAll(fx.abs("somedir"), 0o755)
	if err := fx.f.Rename("somedir", "otherdir", nil); err == nil {
		t.Fatal("directory renamed")
	}
	noTemps(t, fx.root)
}

func TestBatchDurabilitySync(t *testing.T) {
	fx := newFixture(t, Options{Durability: Batch})
	for i, name := range []string{"a.txt", "d/b.txt", "d/e/c.txt"} {
		if err := fx.f.WriteAtomic(name, strings.NewReader(strings.Repeat("x", i*1000)), FileMeta{ModTime: mt1}, nil); err != nil {
			t.Fatal(err)
		}
	}
	fx.f.WriteAtomic("a.txt", strings.NewReader("v2"), FileMeta{}, nil)
	fx.f.Rename("d/b.txt", "moved.txt", nil)
	fx.f.Remove("d/e/c.txt", nil)
	if n := len(fx.f.fl.dirty); n == 0 {
		t.Fatal("batch mode noted nothing to flush")
	}
	if err := fx.f.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if n := len(fx.f.fl.dirty); n != 0 {
		t.Fatalf("%d paths still pending after Sync", n)
	}
	if err := fx.f.Sync(); err != nil {
		t.Fatalf("second Sync: %v", err)
	}
	if got := readFile(t, fx.abs("a.txt")); got != "v2" {
		t.Fatalf("a.txt = %q", got)
	}
	// PerFile: nothing is left pending.
	pf := newFixture(t, Options{})
	pf.f.WriteAtomic("x", strings.NewReader("x"), FileMeta{}, nil)
	if len(pf.f.fl.dirty) != 0 || pf.f.Sync() != nil {
		t.Fatal("per-file mode left work for Sync")
	}
}

func TestCleanTemps(t *testing.T) {
	now := time.Now()
	clock := now
	fx := newFixture(t, Options{Now: func() time.Time { return clock }})
	os.MkdirAll(fx.abs("d/e"), 0o755)
	for _, name := range []string{".escale-tmp-1", "d/.escale-tmp-2", "d/e/.escale-tmp-3"} {
		os.WriteFile(fx.abs(name), []byte("partial"), 0o600)
		// The mtime of a temp is the incoming file's; CleanTemps must not trust it.
		os.Chtimes(fx.abs(name), mt1, mt1)
	}
	fx.put(t, "d/real.txt", "keep", mt1)
	fx.put(t, "escale-tmp-lookalike", "keep", mt1)

	// Fresh temps survive a grace period.
	if n, err := fx.f.CleanTemps(time.Hour); err != nil || n != 0 {
		t.Fatalf("fresh temps: removed %d, %v", n, err)
	}
	// A temp being written right now survives whatever the grace.
	pr, pw := io.Pipe()
	done := make(chan error)
	go func() { done <- fx.f.WriteAtomic("d/inflight.txt", pr, FileMeta{}, nil) }()
	pw.Write([]byte("half"))

	clock = now.Add(2 * time.Hour)
	n, err := fx.f.CleanTemps(time.Hour)
	if err != nil || n != 3 {
		t.Fatalf("old temps: removed %d, %v; want 3", n, err)
	}
	pw.Write([]byte(" and the rest"))
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("in-flight write broken by CleanTemps: %v", err)
	}
	if readFile(t, fx.abs("d/inflight.txt")) != "half and the rest" {
		t.Fatal("in-flight content damaged")
	}
	noTemps(t, fx.root)
	for _, name := range []string{"d/real.txt", "escale-tmp-lookalike"} {
		if _, err := os.Lstat(fx.abs(name)); err != nil {
			t.Errorf("%s removed", name)
		}
	}
}

func TestIsTemp(t *testing.T) {
	for name, want := range map[string]bool{
		".escale-tmp-abc": true, "d/.escale-tmp-x": true, filepath.Join("d", ".escale-tmp-x"): true,
		"escale-tmp-x": false, "d/x.escale-tmp-": false, ".escale-tmp-dir/file": false,
	} {
		if IsTemp(name) != want {
			t.Errorf("IsTemp(%q) != %v", name, want)
		}
	}
	fx := newFixture(t, Options{TempPrefix: ".mine-"})
	if !fx.f.IsTemp("a/.mine-1") || fx.f.IsTemp("a/.escale-tmp-1") {
		t.Fatal("Folder.IsTemp ignores its prefix")
	}
	// Temps are written with the configured prefix.
	pr, pw := io.Pipe()
	done := make(chan error)
	go func() { done <- fx.f.WriteAtomic("x", pr, FileMeta{}, nil) }()
	pw.Write([]byte("a"))
	ents, _ := os.ReadDir(fx.root)
	pw.Close()
	<-done
	if len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), ".mine-") {
		t.Fatalf("during the write the folder held %v", ents)
	}
}

// A folder reached through a symlink (say ~/Sync → /data/Sync) works like any other.
func TestFolderThroughSymlinkedRoot(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	f, err := OpenFolder(link, Options{TrashDir: t.TempDir(), Now: func() time.Time { return later }})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.WriteAtomic("d/x.txt", strings.NewReader("x"), FileMeta{}, nil); err != nil {
		t.Fatal(err)
	}
	if readFile(t, filepath.Join(real, "d", "x.txt")) != "x" {
		t.Fatal("write did not land in the real folder")
	}
	os.WriteFile(filepath.Join(real, "d", DefaultTempPrefix+"crashed"), nil, 0o600)
	if n, err := f.CleanTemps(time.Minute); err != nil || n != 1 {
		t.Fatalf("CleanTemps through a symlinked root: %d, %v", n, err)
	}
}
