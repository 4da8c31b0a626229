package scan

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/escale-sync/escale/pkg/filter"
	"github.com/escale-sync/escale/pkg/state"
)

// tree writes files (path → content; a trailing '/' makes a directory) under
// a new temp dir and returns it.
func tree(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func openCache(t testing.TB) *state.HashCache {
	t.Helper()
	db, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db.HashCache()
}

func scanAll(t testing.TB, s *Scanner) ([]Entry, Stats) {
	t.Helper()
	var got []Entry
	st, err := s.Scan(context.Background(), func(e Entry) error {
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return got, st
}

func paths(es []Entry) []string {
	var ps []string
	for _, e := range es {
		ps = append(ps, e.Path)
	}
	return ps
}

func byPath(es []Entry) map[string]Entry {
	m := make(map[string]Entry)
	for _, e := range es {
		m[e.Path] = e
	}
	return m
}

// settle waits until files just written are out of the racy window.
const testWindow = 30 * time.Millisecond

func settle() { time.Sleep(3 * testWindow) }

func TestScanReportsTreeInOrder(t *testing.T) {
	files := map[string]string{
		"a":                 "1",
		"a-b/x":             "22",
		"a/z":               "333",
		"a/y/deep":          "4444",
		"B":                 "upper sorts first",
		".hidden":           "dot files sync",
		"empty/":            "",
		"a/é":               "utf-8",
		"z/.escale-tmp-123": "temp: never",
	}
	// "a" cannot be both a file and a dir; use "a0" for the file.
	delete(files, "a")
	files["a0"] = "1"
	root := tree(t, files)
	s := &Scanner{Root: root, Workers: 3}
	got, st := scanAll(t, s)

	want := []string{".hidden", "B", "a", "a/y", "a/y/deep", "a/z", "a/é", "a-b", "a-b/x", "a0", "empty", "z"}
	if !slices.Equal(paths(got), want) {
		t.Fatalf("paths =\n%q\nwant\n%q", paths(got), want)
	}
	if !slices.IsSortedFunc(paths(got), func(a, b string) int {
		if Less(a, b) {
			return -1
		}
		if Less(b, a) {
			return 1
		}
		return 0
	}) {
		t.Error("emitted order is not Less order")
	}
	m := byPath(got)
	for p, content := range files {
		if strings.HasSuffix(p, "/") || strings.Contains(p, ".escale-tmp-") {
			continue
		}
		e := m[p]
		if e.Kind != File || e.Hash != blake3.Sum256([]byte(content)) || e.Size != int64(len(content)) {
			t.Errorf("%s: %+v; want file of %d bytes with its content's hash", p, e, len(content))
		}
		fi, _ := os.Lstat(filepath.Join(root, p))
		if e.ModTimeNs != fi.ModTime().UnixNano() || e.Mode != fi.Mode() {
			t.Errorf("%s: mtime/mode %d %v, lstat says %d %v", p, e.ModTimeNs, e.Mode, fi.ModTime().UnixNano(), fi.Mode())
		}
	}
	if e := m["empty"]; e.Kind != Dir || !e.Empty {
		t.Errorf("empty: %+v, want an empty dir", e)
	}
	if e := m["z"]; e.Kind != Dir || !e.Empty {
		t.Errorf("z (holds only a temp file): %+v, want an empty dir", e)
	}
	if e := m["a"]; e.Kind != Dir || e.Empty {
		t.Errorf("a: %+v, want a non-empty dir", e)
	}
	if st.Files != 7 || st.Dirs != 5 || st.Hashed != 7 || st.Excluded != 1 {
		t.Errorf("stats %+v", st)
	}

	// Deterministic: the same again, whatever the worker count.
	s.Workers = 1
	again, _ := scanAll(t, s)
	if !slices.Equal(got, again) {
		t.Error("second scan differs")
	}
}

func TestLess(t *testing.T) {
	ordered := []string{"", "a", "a/b", "a/b/c", "a/bc", "a-b", "a0", "ab", "b"}
	for i := range ordered {
		for j := range ordered {
			if Less(ordered[i], ordered[j]) != (i < j) {
				t.Errorf("Less(%q, %q) = %v", ordered[i], ordered[j], !(i < j))
			}
		}
	}
}

func TestCacheHitAvoidsReading(t *testing.T) {
	root := tree(t, map[string]string{"f1": "one", "d/f2": "two", "d/e/f3": "three"})
	settle()
	s := &Scanner{Root: root, Cache: openCache(t), RacyWindow: testWindow}
	first, st := scanAll(t, s)
	if st.Hashed != 3 || st.CacheHits != 0 || st.Racy != 0 {
		t.Fatalf("first scan: %+v", st)
	}
	second, st := scanAll(t, s)
	if st.Hashed != 0 || st.CacheHits != 3 {
		t.Fatalf("second scan read files: %+v", st)
	}
	if !slices.Equal(first, second) {
		t.Errorf("cached scan differs:\n%+v\n%+v", first, second)
	}
}

func TestReplaceByRenameWithSameSizeAndMtime(t *testing.T) {
	root := tree(t, map[string]string{"f": "version-1"})
	settle()
	s := &Scanner{Root: root, Cache: openCache(t), RacyWindow: testWindow}
	scanAll(t, s)

	p := filepath.Join(root, "f")
	old, _ := os.Stat(p)
	tmp := filepath.Join(root, "tmp")
	if err := os.WriteFile(tmp, []byte("version-2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, old.ModTime(), old.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	got, st := scanAll(t, s)
	if e := byPath(got)["f"]; e.Hash != blake3.Sum256([]byte("version-2")) {
		t.Errorf("replaced file reported with the old hash; stats %+v", st)
	}
	if st.Hashed != 1 {
		t.Errorf("Hashed = %d, want 1", st.Hashed)
	}
}

func TestSameSecondEditDetected(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "f")
	s := &Scanner{Root: root, Cache: openCache(t), RacyWindow: testWindow}
	for try := 0; ; try++ {
		// Start early in a second so both writes share it (file times come
		// from a coarse clock that may lag a few ms).
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
		if err := os.WriteFile(p, []byte("AAAA"), 0o644); err != nil {
			t.Fatal(err)
		}
		settle()
		if _, st := scanAll(t, s); st.Hashed != 1 {
			t.Fatalf("first scan: %+v", st)
		}
		before, _ := os.Stat(p)
		if err := os.WriteFile(p, []byte("BBBB"), 0o644); err != nil {
			t.Fatal(err)
		}
		after, _ := os.Stat(p)
		if before.ModTime().Unix() != after.ModTime().Unix() {
			if try < 3 {
				continue
			}
			t.Skip("could not make two writes within one second")
		}
		settle()
		got, _ := scanAll(t, s)
		if byPath(got)["f"].Hash != blake3.Sum256([]byte("BBBB")) {
			t.Fatal("same-second, same-size edit not detected")
		}
		return
	}
}

func TestMtimeRestoredEditDetectedByCtime(t *testing.T) {
	root := tree(t, map[string]string{"f": "AAAA"})
	settle()
	s := &Scanner{Root: root, Cache: openCache(t), RacyWindow: testWindow}
	scanAll(t, s)
	p := filepath.Join(root, "f")
	old, _ := os.Stat(p)
	if err := os.WriteFile(p, []byte("BBBB"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, old.ModTime(), old.ModTime()); err != nil {
		t.Fatal(err)
	}
	settle()
	got, _ := scanAll(t, s)
	if byPath(got)["f"].Hash != blake3.Sum256([]byte("BBBB")) {
		t.Fatal("edit with the mtime put back not detected")
	}
}

func TestRacyFileIsNotTrustedNextTime(t *testing.T) {
	root := tree(t, map[string]string{"f": "fresh"})
	cache := openCache(t)
	s := &Scanner{Root: root, Cache: cache, RacyWindow: time.Hour} // everything is racy
	got, st := scanAll(t, s)
	if !got[0].Racy || st.Racy != 1 || st.Hashed != 1 {
		t.Fatalf("fresh file: racy=%v stats %+v", got[0].Racy, st)
	}
	if _, st = scanAll(t, s); st.Hashed != 1 || st.CacheHits != 0 {
		t.Fatalf("racy record trusted: %+v", st)
	}
	// Once the record was taken well after the change, it is trusted.
	s.RacyWindow = testWindow
	settle()
	scanAll(t, s)
	if got, st = scanAll(t, s); st.Hashed != 0 || got[0].Racy {
		t.Fatalf("settled file re-read or racy: %+v", st)
	}
}

func TestTornReadNeverEmitted(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a large file")
	}
	root := t.TempDir()
	p := filepath.Join(root, "growing")
	block := func(i int) []byte {
		b := make([]byte, 64<<10)
		for k := range b {
			b[k] = byte(i*31 + k)
		}
		return b
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 256 { // 16 MiB to start with
		f.Write(block(i))
	}
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		// Bursts of appends with pauses, so some reads overlap a burst and
		// some do not.
		for i := 256; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := f.Write(block(i)); err != nil {
				t.Error(err)
				return
			}
			pause := 100 * time.Microsecond
			if i%16 == 0 {
				pause = 40 * time.Millisecond
			}
			time.Sleep(pause)
		}
	}()
	var results []Entry
	unstable := 0
	s := &Scanner{Root: root, Cache: openCache(t), Retries: 2}
	for range 12 {
		got, st := scanAll(t, s)
		results = append(results, got...)
		unstable += len(st.Unstable)
	}
	close(stop)
	<-writerDone
	f.Close()
	content, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// The file only grew, so any version it had is a prefix of the final one.
	for _, e := range results {
		if e.Size > int64(len(content)) || blake3.Sum256(content[:e.Size]) != e.Hash {
			t.Fatalf("emitted hash of %d bytes matches no version of the file", e.Size)
		}
	}
	t.Logf("%d consistent hashes, %d scans reported it unstable", len(results), unstable)
	if len(results)+unstable != 12 {
		t.Errorf("%d results + %d unstable, want 12 in all", len(results), unstable)
	}
}

func TestFiltersAndIgnoreFiles(t *testing.T) {
	root := tree(t, map[string]string{
		".escaleignore":             "*.log\n/top-only\ncache/\n",
		"a.log":                     "x",
		"a.txt":                     "x",
		"a.txt.bak":                 "x",
		"top-only":                  "x",
		"sub/top-only":              "x",
		"sub/cache/f.txt":           "x",
		"sub/.escaleignore":         "!keep.log\n",
		"sub/keep.log":              "x",
		"sub/other.log":             "x",
		"sub/deeper/.escaleignore":  "*.txt\n",
		"sub/deeper/x.txt":          "x",
		"sub/deeper/x.md":           "x",
		"node_modules/pkg/index.js": "x",
		"sub/node_modules/x.js":     "x",
	})
	f, err := filter.New(filter.Rules{
		Exclude:     []string{"*.bak"},
		ExcludeDirs: []string{"node_modules"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, st := scanAll(t, &Scanner{Root: root, Filter: f})
	want := []string{".escaleignore", "a.txt", "sub", "sub/.escaleignore", "sub/deeper",
		"sub/deeper/.escaleignore", "sub/deeper/x.md", "sub/keep.log", "sub/top-only"}
	if !slices.Equal(paths(got), want) {
		t.Errorf("paths =\n%q\nwant\n%q", paths(got), want)
	}
	if st.Excluded != 8 {
		t.Errorf("Excluded = %d, want 8", st.Excluded)
	}
	// Each kept path is one Filter.Match (with the same ignore files) keeps.
	g := f
	for _, ig := range []struct{ dir, content string }{{"", ".escaleignore"}, {"sub", "sub/.escaleignore"}, {"sub/deeper", "sub/deeper/.escaleignore"}} {
		b, _ := os.ReadFile(filepath.Join(root, ig.content))
		if g, err = g.WithIgnoreFile(ig.dir, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range want {
		fi, _ := os.Lstat(filepath.Join(root, p))
		if !g.Match(p, fi.IsDir()) {
			t.Errorf("scanner kept %s, Filter.Match rejects it", p)
		}
	}
}

func TestIncludeDirsAtDepth(t *testing.T) {
	root := tree(t, map[string]string{
		"root.txt": "x", "x/a": "x", "x/y/build/out": "x", "build/b": "x", "x/y/build/sub/c": "x",
	})
	f, _ := filter.New(filter.Rules{IncludeDirs: []string{"build"}})
	got, _ := scanAll(t, &Scanner{Root: root, Filter: f})
	want := []string{"build", "build/b", "x/y/build", "x/y/build/out", "x/y/build/sub", "x/y/build/sub/c"}
	if !slices.Equal(paths(got), want) {
		t.Errorf("paths = %q, want %q", paths(got), want)
	}
}

func TestBadIgnoreFileSkipsItsDirectory(t *testing.T) {
	root := tree(t, map[string]string{"ok": "x", "d/.escaleignore": "[broken\n", "d/secret": "x"})
	got, st := scanAll(t, &Scanner{Root: root})
	if !slices.Equal(paths(got), []string{"ok"}) {
		t.Errorf("paths = %q", paths(got))
	}
	if len(st.Errors) != 1 || st.Errors[0].Path != "d" || !strings.Contains(st.Errors[0].Error(), "line 1") {
		t.Errorf("errors = %v", st.Errors)
	}
}

func TestSymlinksNotFollowed(t *testing.T) {
	outside := tree(t, map[string]string{"secret": "outside the root"})
	root := tree(t, map[string]string{"real/f": "in"})
	links := map[string]string{
		"to-outside-dir": outside, "to-outside-file": filepath.Join(outside, "secret"),
		"to-real": "real", "dangling": "nowhere", "real/up": "..",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	got, st := scanAll(t, &Scanner{Root: root})
	want := []string{"dangling", "real", "real/f", "real/up", "to-outside-dir", "to-outside-file", "to-real"}
	if !slices.Equal(paths(got), want) {
		t.Fatalf("paths = %q, want %q", paths(got), want)
	}
	m := byPath(got)
	for name, target := range links {
		e := m[name]
		if e.Kind != Symlink || e.Target != target || e.Hash != blake3.Sum256([]byte(target)) || e.Size != int64(len(target)) {
			t.Errorf("%s: %+v", name, e)
		}
	}
	if st.Symlinks != 5 || st.Files != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestPrune(t *testing.T) {
	root := tree(t, map[string]string{"keep": "k", "gone": "g", "d/x": "x", "d/e/y": "y", "other/z": "z"})
	settle()
	cache := openCache(t)
	s := &Scanner{Root: root, Cache: cache, RacyWindow: testWindow}
	scanAll(t, s)
	if n, _ := cache.Len(); n != 5 {
		t.Fatalf("cache has %d records, want 5", n)
	}
	os.Remove(filepath.Join(root, "gone"))
	os.RemoveAll(filepath.Join(root, "d"))
	// A file that becomes excluded is dropped too.
	s.Filter, _ = filter.New(filter.Rules{ExcludeDirs: []string{"other"}})
	_, st := scanAll(t, s)
	if st.Pruned != 4 {
		t.Errorf("Pruned = %d, want 4", st.Pruned)
	}
	for _, p := range []string{"gone", "d/x", "d/e/y", "other/z"} {
		if _, ok, _ := cache.Get(p); ok {
			t.Errorf("%s still cached", p)
		}
	}
	if _, ok, _ := cache.Get("keep"); !ok {
		t.Error("keep no longer cached")
	}
	if n, _ := cache.Len(); n != 1 {
		t.Errorf("cache has %d records, want 1", n)
	}
}

func TestEmitErrorStopsScan(t *testing.T) {
	files := map[string]string{}
	for i := range 200 {
		files[filepath.Join("d", strings.Repeat("x", i%7+1), string(rune('a'+i%26))+string(rune('a'+i/26)))] = "c"
	}
	root := tree(t, files)
	s := &Scanner{Root: root, Cache: openCache(t), Workers: 2}
	boom := errors.New("boom")
	n := 0
	_, err := s.Scan(context.Background(), func(Entry) error {
		n++
		if n == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 10 {
		t.Fatalf("err = %v after %d entries, want boom after 10", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Scan(ctx, func(Entry) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled scan: %v", err)
	}
}

func TestMissingRootIsAnError(t *testing.T) {
	_, err := (&Scanner{Root: filepath.Join(t.TempDir(), "nope")}).Scan(context.Background(), func(Entry) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v", err)
	}
}

func TestVouches(t *testing.T) {
	root := tree(t, map[string]string{"f": "AAAA", "g": "racy"})
	p := filepath.Join(root, "f")
	settle()
	s := &Scanner{Root: root, Cache: openCache(t), RacyWindow: testWindow}
	scanAll(t, s)
	stat := func(name string) os.FileInfo {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	a := blake3.Sum256([]byte("AAAA"))
	if !s.Vouches("f", stat("f"), a) {
		t.Fatal("a settled, unchanged file is not vouched for")
	}
	if s.Vouches("f", stat("f"), blake3.Sum256([]byte("BBBB"))) {
		t.Fatal("vouched for another hash")
	}
	if s.Vouches("missing", stat("f"), a) {
		t.Fatal("vouched for a path without a record")
	}
	// An edit that keeps size and mtime still moves the change time.
	before := stat("f")
	if err := os.WriteFile(p, []byte("BBBB"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, before.ModTime(), before.ModTime()); err != nil {
		t.Fatal(err)
	}
	if s.Vouches("f", stat("f"), a) {
		t.Fatal("vouched for a file edited since the scan")
	}
	// A record taken within the racy window of the change vouches for nothing.
	if err := os.WriteFile(filepath.Join(root, "g"), []byte("RACY"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.RacyWindow = time.Hour
	scanAll(t, s)
	if s.Vouches("g", stat("g"), blake3.Sum256([]byte("RACY"))) {
		t.Fatal("vouched from a racy record")
	}
	s.RacyWindow = testWindow
	if (&Scanner{}).Vouches("f", stat("f"), a) {
		t.Fatal("vouched without a cache")
	}
}
