package watch

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// patience bounds every wait for events; tests never assert how long
// anything took, only what arrived.
const patience = 15 * time.Second

// fast keeps tests short without depending on timing for their outcome.
var fast = Options{Debounce: 50 * time.Millisecond, MaxDelay: 2 * time.Second}

func start(t *testing.T, root string, opts Options) *Watcher {
	t.Helper()
	w, err := New(root, opts)
	if err != nil {
		t.Fatalf("New(%s): %v", root, err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return w
}

// seen accumulates what a test received.
type seen struct {
	batches  []Batch
	paths    map[string]bool
	overflow bool
}

func (s *seen) has(want ...string) bool {
	for _, p := range want {
		if !s.paths[p] {
			return false
		}
	}
	return true
}

func (s *seen) list() []string {
	var l []string
	for p := range s.paths {
		l = append(l, p)
	}
	slices.Sort(l)
	if len(l) > 40 {
		l = append(l[:40], fmt.Sprintf("... (%d in all)", len(l)))
	}
	return l
}

// collect reads batches until until(s) holds, checking each batch's shape.
func collect(t *testing.T, w *Watcher, what string, until func(s *seen) bool) *seen {
	t.Helper()
	s := &seen{paths: map[string]bool{}}
	timeout := time.After(patience)
	for !until(s) {
		select {
		case b, ok := <-w.Changes():
			if !ok {
				t.Fatalf("waiting for %s: Changes closed; saw %v", what, s.list())
			}
			checkBatch(t, b)
			s.batches = append(s.batches, b)
			for _, p := range b.Paths {
				s.paths[p] = true
			}
			s.overflow = s.overflow || b.Overflow
		case <-timeout:
			t.Fatalf("waited %v for %s; saw overflow=%v paths %v", patience, what, s.overflow, s.list())
		}
	}
	return s
}

func waitPaths(t *testing.T, w *Watcher, want ...string) *seen {
	t.Helper()
	return collect(t, w, fmt.Sprint(want), func(s *seen) bool { return s.has(want...) })
}

func waitOverflow(t *testing.T, w *Watcher) *seen {
	t.Helper()
	return collect(t, w, "an Overflow batch", func(s *seen) bool { return s.overflow })
}

func checkBatch(t *testing.T, b Batch) {
	t.Helper()
	if len(b.Paths) == 0 && !b.Overflow {
		t.Errorf("empty batch without Overflow")
	}
	for i, p := range b.Paths {
		if p == "" || p == "." || strings.HasPrefix(p, "/") || strings.Contains(p, `\`) || path.Clean(p) != p || strings.HasPrefix(p, "../") {
			t.Errorf("batch path %q is not a clean slash-separated relative path", p)
		}
		if i > 0 && b.Paths[i-1] >= p {
			t.Errorf("batch paths not sorted and unique: %q then %q", b.Paths[i-1], p)
		}
	}
}

func write(t *testing.T, root, rel, data string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdirs(t *testing.T, root, rel string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(rel)), 0o755); err != nil {
		t.Fatal(err)
	}
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func TestFileChanges(t *testing.T) {
	root := t.TempDir()
	write(t, root, "old.txt", "old")
	mkdirs(t, root, "sub/deep")
	write(t, root, "sub/deep/kept.txt", "kept")
	w := start(t, root, fast)

	write(t, root, "new.txt", "new")
	waitPaths(t, w, "new.txt")

	write(t, root, "sub/deep/kept.txt", "modified")
	waitPaths(t, w, "sub/deep/kept.txt")

	if err := os.Remove(filepath.Join(root, "old.txt")); err != nil {
		t.Fatal(err)
	}
	waitPaths(t, w, "old.txt")

	rename(t, filepath.Join(root, "new.txt"), filepath.Join(root, "sub", "moved.txt"))
	waitPaths(t, w, "new.txt", "sub/moved.txt")

	if w.Degraded() {
		t.Error("Degraded after ordinary changes")
	}
}

func TestNewNestedDirectories(t *testing.T) {
	root := t.TempDir()
	w := start(t, root, fast)

	// Created faster than the watcher can add watches: the walk finds them.
	mkdirs(t, root, "a/b/c")
	write(t, root, "a/b/c/f.txt", "f")
	waitPaths(t, w, "a", "a/b", "a/b/c", "a/b/c/f.txt")

	// The new directories are watched from now on.
	write(t, root, "a/b/c/g.txt", "g")
	write(t, root, "a/b/h.txt", "h")
	waitPaths(t, w, "a/b/c/g.txt", "a/b/h.txt")
}

func TestDirectoryMovedIn(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	mkdirs(t, outside, "x/y")
	write(t, outside, "x/y/file.txt", "before the move")
	w := start(t, root, fast)

	rename(t, filepath.Join(outside, "x"), filepath.Join(root, "x"))
	waitPaths(t, w, "x", "x/y", "x/y/file.txt")

	write(t, root, "x/y/later.txt", "after the move")
	waitPaths(t, w, "x/y/later.txt")
}

// A directory renamed inside the root must report later changes under its
// new name only (fsnotify alone keeps stale names for the watches below it).
func TestDirectoryRenamedInside(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "d/e/f")
	w := start(t, root, fast)

	rename(t, filepath.Join(root, "d"), filepath.Join(root, "r"))
	waitPaths(t, w, "d", "r", "r/e", "r/e/f")

	write(t, root, "r/e/one.txt", "1")
	write(t, root, "r/e/f/two.txt", "2")
	s := waitPaths(t, w, "r/e/one.txt", "r/e/f/two.txt")
	for p := range s.paths {
		if strings.HasPrefix(p, "d/") {
			t.Errorf("change reported under the old name %q", p)
		}
	}

	// Moving a directory out drops its watches; a new one at the old name is
	// watched afresh.
	rename(t, filepath.Join(root, "r"), filepath.Join(t.TempDir(), "gone"))
	waitPaths(t, w, "r")
	mkdirs(t, root, "r/e")
	write(t, root, "r/e/three.txt", "3")
	waitPaths(t, w, "r/e/three.txt")
}

func TestBurstGivesFewBatches(t *testing.T) {
	root := t.TempDir()
	w := start(t, root, Options{}) // defaults: 500ms debounce, 5s max delay
	const n = 1000
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("f%04d.txt", i)
		write(t, root, want[i], "x")
	}
	s := waitPaths(t, w, want...)
	if s.overflow {
		t.Errorf("1,000 files overflowed (MaxPaths default is %d)", DefaultMaxPaths)
	}
	// One batch is expected; a stalled machine may split the burst, but not
	// into anything like one batch per file.
	t.Logf("%d writes gave %d batch(es)", n, len(s.batches))
	if len(s.batches) > 5 {
		t.Errorf("%d writes gave %d batches; want a few", n, len(s.batches))
	}
	if len(s.paths) != n {
		t.Errorf("got %d distinct paths, want %d", len(s.paths), n)
	}
}

func TestTooManyPathsOverflow(t *testing.T) {
	root := t.TempDir()
	opts := fast
	opts.MaxPaths = 100
	w := start(t, root, opts)
	for i := range 300 {
		write(t, root, fmt.Sprintf("f%03d", i), "x")
	}
	s := waitOverflow(t, w)
	for _, b := range s.batches {
		if len(b.Paths) > opts.MaxPaths {
			t.Errorf("batch holds %d paths, over MaxPaths %d", len(b.Paths), opts.MaxPaths)
		}
	}
	if w.Degraded() {
		t.Error("a large burst must not degrade the watcher")
	}
	// Watching goes on normally afterwards.
	write(t, root, "after", "x")
	waitPaths(t, w, "after")
}

func TestMaxDelayDuringEndlessWrites(t *testing.T) {
	root := t.TempDir()
	// The debounce never elapses while writes go on; only MaxDelay can end
	// the burst.
	w := start(t, root, Options{Debounce: 500 * time.Millisecond, MaxDelay: time.Second})
	stop := make(chan struct{})
	writing := make(chan struct{})
	go func() {
		defer close(writing)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				// Errors end the test through the missing batch.
				_ = os.WriteFile(filepath.Join(root, "busy.log"), fmt.Appendf(nil, "%d", i), 0o644)
			}
		}
	}()
	defer func() { close(stop); <-writing }()
	select {
	case b := <-w.Changes():
		if !slices.Contains(b.Paths, "busy.log") {
			t.Errorf("batch %v lacks busy.log", b.Paths)
		}
	case <-time.After(patience):
		t.Fatal("no batch while writes continued: MaxDelay did not cut the burst")
	}
}

func TestIgnore(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "skip/inner")
	var mu sync.Mutex
	var asked []string
	opts := fast
	opts.Ignore = func(rel string) bool {
		mu.Lock()
		asked = append(asked, rel)
		mu.Unlock()
		return strings.HasPrefix(path.Base(rel), ".escale-tmp-") || rel == "skip" || rel == "newskip"
	}
	w := start(t, root, opts)

	write(t, root, ".escale-tmp-123", "partial")
	write(t, root, "skip/inner/x", "x")
	mkdirs(t, root, "newskip/deeper")
	write(t, root, "newskip/deeper/y", "y")
	mkdirs(t, root, "kept")
	write(t, root, "kept/.escale-tmp-9", "partial")
	write(t, root, "kept/z", "z") // last, so everything above came first
	s := waitPaths(t, w, "kept/z")
	for p := range s.paths {
		if p != "kept" && p != "kept/z" {
			t.Errorf("ignored path %q reported", p)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(asked, ".escale-tmp-123") || !slices.Contains(asked, "kept/z") {
		t.Errorf("Ignore was not asked about the changed paths; asked %v", asked)
	}
	for _, rel := range asked {
		if strings.HasPrefix(rel, "skip/") || strings.HasPrefix(rel, "newskip/") {
			t.Errorf("Ignore asked about %q below an ignored folder: it was walked or watched", rel)
		}
	}
}

func TestRootRemoved(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	mkdirs(t, root, "sub")
	w := start(t, root, fast)
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	waitOverflow(t, w)
	if !w.Degraded() {
		t.Error("Degraded is false after the root was removed")
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(filepath.Join(dir, "missing"), Options{}); err == nil {
		t.Error("New on a missing folder succeeded")
	}
	write(t, dir, "file", "x")
	if _, err := New(filepath.Join(dir, "file"), Options{}); err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Errorf("New on a file: %v, want a 'not a folder' error", err)
	}
}

func TestSymlinkedRoot(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Skipf("cannot create a symlink here: %v", err)
	}
	mkdirs(t, real, "sub")
	w := start(t, link, fast)
	write(t, link, "sub/f", "x")
	waitPaths(t, w, "sub/f")
}

func TestCloseStopsGoroutines(t *testing.T) {
	settle := func() int {
		runtime.GC()
		return runtime.NumGoroutine()
	}
	before := settle()
	root := t.TempDir()
	w, err := New(root, fast)
	if err != nil {
		t.Fatal(err)
	}
	mkdirs(t, root, "a")
	write(t, root, "a/f", "x")
	waitPaths(t, w, "a/f")
	write(t, root, "unread", "x") // leaves the emitter holding a batch nobody reads
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for b := range w.Changes() { // drains what was sent before Close, then ends
		checkBatch(t, b)
	}
	deadline := time.Now().Add(patience)
	for settle() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuffer captures a Watcher's log for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
