// Package storagetest is the storage adapter's conformance suite: one set of
// behaviours every relay backend must show, run against a local folder,
// rclone's memory backend, a remote from rclone.conf and every real test
// server (pkg/storage/servers_test.go).
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/storage"
)

// ScrubEnv unsets every RCLONE_* environment variable for the test (they
// would reconfigure rclone behind the test's back), restoring them after.
// It uses t.Setenv, so the test must not be parallel.
func ScrubEnv(t testing.TB) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "RCLONE_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// suite is the shared state of one RunConformance.
type suite struct {
	relay *storage.Relay
	feat  storage.Features
	base  string // this run's folder under the relay root
}

// env is one subtest's view: its own folder.
type env struct {
	*suite
	t   *testing.T
	ctx context.Context
	dir string
}

// RunConformance runs the adapter conformance suite against a fresh, empty
// relay spec (each subtest uses its own sub-folder). It skips the large-object
// test under testing.Short().
func RunConformance(t *testing.T, spec string) {
	t.Helper()
	ctx := context.Background()
	relay, err := storage.Open(ctx, spec)
	if err != nil {
		t.Fatalf("open %s: %v", spec, err)
	}
	s := &suite{relay: relay, feat: relay.Features(), base: "conformance-" + randomHex(6)}
	t.Logf("relay %s: %+v", relay, s.feat)
	t.Cleanup(func() {
		if err := relay.Purge(context.Background(), s.base); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := relay.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	for _, tc := range []struct {
		name string
		fn   func(e *env)
	}{
		{"RoundTrip", testRoundTrip},
		{"StreamLarge", testStreamLarge},
		{"RangedOpen", testRangedOpen},
		{"StatList", testStatList},
		{"ListMissing", testListMissing},
		{"Walk", testWalk},
		{"Delete", testDelete},
		{"KeepListed", testKeepListed},
		{"Overwrite", testOverwrite},
		{"PutIfAbsent", testPutIfAbsent},
		{"Move", testMove},
		{"Purge", testPurge},
		{"Rmdir", testRmdir},
		{"About", testAbout},
		{"Names", testNames},
		{"Concurrency", testConcurrency},
		{"InvalidNames", testInvalidNames},
		{"ErrorsCarryOpAndName", testErrorsCarryOpAndName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(&env{suite: s, t: t, ctx: t.Context(), dir: s.base + "/" + tc.name})
		})
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// data is n bytes from a PRNG seeded by seed, so failures reproduce.
func data(seed string, n int) []byte {
	b := make([]byte, n)
	_, _ = newPRNG(seed).Read(b)
	return b
}

func newPRNG(seed string) *mrand.ChaCha8 {
	return mrand.NewChaCha8(sha256.Sum256([]byte(seed)))
}

func (e *env) name(n string) string { return e.dir + "/" + n }

func (e *env) put(name string, b []byte) storage.Entry {
	e.t.Helper()
	entry, err := e.relay.Put(e.ctx, name, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		e.t.Fatalf("put %s (%d bytes): %v", name, len(b), err)
	}
	return entry
}

func (e *env) read(name string, offset, length int64) []byte {
	e.t.Helper()
	rc, err := e.relay.Open(e.ctx, name, offset, length)
	if err != nil {
		e.t.Fatalf("open %s [%d,+%d): %v", name, offset, length, err)
	}
	b, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		e.t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func (e *env) wantKind(err error, want storage.Kind, what string) {
	e.t.Helper()
	if err == nil {
		e.t.Fatalf("%s: got no error, want %s", what, want)
	}
	if got := storage.KindOf(err); got != want {
		e.t.Fatalf("%s: got kind %s, want %s: %v", what, got, want, err)
	}
	var se *storage.Error
	if !errors.As(err, &se) || se.Op == "" {
		e.t.Fatalf("%s: error is not a *storage.Error with an Op: %#v", what, err)
	}
}

func (e *env) wantSame(got, want []byte, what string) {
	e.t.Helper()
	if !bytes.Equal(got, want) {
		e.t.Fatalf("%s: got %d bytes (sha256 %x), want %d bytes (sha256 %x)",
			what, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

func testRoundTrip(e *env) {
	for _, n := range []int{0, 1, 1000, 1 << 20} {
		b := data(e.t.Name()+fmt.Sprint(n), n)
		name := e.name(fmt.Sprintf("known-%d", n))
		entry, err := e.relay.Put(e.ctx, name, bytes.NewReader(b), int64(n))
		if n == 0 && storage.KindOf(err) == storage.KindUnsupported {
			e.t.Logf("backend cannot store empty objects: %v", err)
			continue
		}
		if err != nil {
			e.t.Fatalf("put %d bytes: %v", n, err)
		}
		if entry.Name != name || entry.Size != int64(n) {
			e.t.Fatalf("put %d bytes: entry %+v", n, entry)
		}
		e.wantSame(e.read(name, 0, -1), b, name)

		// Unknown size, through a reader that cannot seek: the streaming path.
		name = e.name(fmt.Sprintf("stream-%d", n))
		if _, err := e.relay.Put(e.ctx, name, io.MultiReader(bytes.NewReader(b)), -1); err != nil {
			e.t.Fatalf("put %d bytes of unknown size: %v", n, err)
		}
		e.wantSame(e.read(name, 0, -1), b, name)
		st, err := e.relay.Stat(e.ctx, name)
		if err != nil || st.Size != int64(n) {
			e.t.Fatalf("stat %s: %+v, %v; want size %d", name, st, err, n)
		}
	}
}

// prngReader yields n PRNG bytes and hashes them as they go, so a large
// object is never held in memory.
type prngReader struct {
	rng  *mrand.ChaCha8
	left int64
	sum  interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func (r *prngReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, _ := r.rng.Read(p)
	r.left -= int64(n)
	r.sum.Write(p[:n])
	return n, nil
}

func testStreamLarge(e *env) {
	if testing.Short() {
		e.t.Skip("large object: skipped in -short mode")
	}
	const n = 64<<20 + 12345
	src := &prngReader{rng: newPRNG(e.t.Name()), left: n, sum: sha256.New()}
	name := e.name("large")
	if _, err := e.relay.Put(e.ctx, name, src, -1); err != nil {
		e.t.Fatalf("stream %d bytes: %v", n, err)
	}
	want := src.sum.Sum(nil)

	rc, err := e.relay.Open(e.ctx, name, 0, -1)
	if err != nil {
		e.t.Fatalf("open: %v", err)
	}
	defer rc.Close()
	h := sha256.New()
	got, err := io.Copy(h, rc)
	if err != nil {
		e.t.Fatalf("read back after %d bytes: %v", got, err)
	}
	if got != n || !bytes.Equal(h.Sum(nil), want) {
		e.t.Fatalf("read back %d bytes (sha256 %x), want %d (sha256 %x)", got, h.Sum(nil), int64(n), want)
	}
	if st, err := e.relay.Stat(e.ctx, name); err != nil || st.Size != n {
		e.t.Fatalf("stat: %+v, %v; want size %d", st, err, int64(n))
	}
}

func testRangedOpen(e *env) {
	const n = 10000
	b := data(e.t.Name(), n)
	name := e.name("ranged")
	e.put(name, b)
	for _, tc := range []struct{ off, length int64 }{
		{0, 100}, {5000, 1000}, {9900, -1}, {9990, 100}, {0, -1}, {0, n}, {1, n - 2},
		{n - 1, 1}, {n, 10}, {n, -1}, {2 * n, -1}, {1234, 0},
	} {
		lo := min(tc.off, n)
		hi := int64(n)
		if tc.length >= 0 {
			hi = min(tc.off+tc.length, n)
		}
		e.wantSame(e.read(name, tc.off, tc.length), b[lo:max(lo, hi)], fmt.Sprintf("range [%d,+%d)", tc.off, tc.length))
	}
	if _, err := e.relay.Open(e.ctx, name, -1, 10); storage.KindOf(err) != storage.KindFatal {
		e.t.Fatalf("negative offset: %v, want a fatal error", err)
	}
}

func testStatList(e *env) {
	b := data(e.t.Name(), 777)
	name := e.name("a/x")
	before := time.Now()
	e.put(name, b)
	after := time.Now()

	st, err := e.relay.Stat(e.ctx, name)
	if err != nil {
		e.t.Fatalf("stat: %v", err)
	}
	if st.Name != name || st.Size != 777 || st.IsDir {
		e.t.Fatalf("stat: %+v", st)
	}
	e.checkModTime(st, before, after)
	e.checkHashes(st, b)

	list, err := e.relay.List(e.ctx, e.name("a"))
	if err != nil {
		e.t.Fatalf("list: %v", err)
	}
	if len(list) != 1 || list[0].Name != name || list[0].Size != 777 || list[0].IsDir {
		e.t.Fatalf("list %s: %+v", e.name("a"), list)
	}
	e.checkModTime(list[0], before, after)
	e.checkHashes(list[0], b)

	list, err = e.relay.List(e.ctx, e.dir)
	if err != nil {
		e.t.Fatalf("list: %v", err)
	}
	if len(list) != 1 || list[0].Name != e.name("a") || !list[0].IsDir {
		e.t.Fatalf("list %s: %+v, want the one folder %s", e.dir, list, e.name("a"))
	}
}

// checkModTime checks an mtime against the upload's time window, widened by
// the backend's precision and a second of rounding.
func (e *env) checkModTime(st storage.Entry, before, after time.Time) {
	e.t.Helper()
	prec := e.feat.ModTimePrecision
	if prec == 0 {
		return // the backend keeps no mtimes
	}
	slack := prec + time.Second
	if st.ModTime.Before(before.Add(-slack)) || st.ModTime.After(after.Add(slack)) {
		e.t.Fatalf("%s: mtime %v outside the upload window [%v, %v] ± %v",
			st.Name, st.ModTime, before, after, slack)
	}
}

// checkHashes recomputes every hash the backend gave and checks it is one it
// advertises.
func (e *env) checkHashes(st storage.Entry, b []byte) {
	e.t.Helper()
	for name, value := range st.Hashes {
		if !slices.Contains(e.feat.Hashes, name) {
			e.t.Fatalf("%s: hash %s not in Features().Hashes %v", st.Name, name, e.feat.Hashes)
		}
		want, err := hashOf(name, b)
		if err != nil {
			e.t.Fatalf("%s: %v", st.Name, err)
		}
		if !strings.EqualFold(value, want) {
			e.t.Fatalf("%s: %s %s, want %s", st.Name, name, value, want)
		}
	}
}

func testListMissing(e *env) {
	list, err := e.relay.List(e.ctx, e.name("never/created"))
	if err != nil || len(list) != 0 {
		e.t.Fatalf("list of a missing folder: %+v, %v; want empty, nil", list, err)
	}
}

func testWalk(e *env) {
	files := []string{"a/1", "a/b/2", "a/b/c/3", "d/4", "5"}
	for _, f := range files {
		e.put(e.name(f), data(f, 10))
	}
	walkAll := func(dir string) []string {
		var got []string
		err := e.relay.Walk(e.ctx, dir, func(en storage.Entry) error {
			if en.IsDir {
				e.t.Errorf("walk gave a folder: %+v", en)
			}
			got = append(got, en.Name)
			return nil
		})
		if err != nil {
			e.t.Fatalf("walk %s: %v", dir, err)
		}
		slices.Sort(got)
		return got
	}
	want := make([]string, len(files))
	for i, f := range files {
		want[i] = e.name(f)
	}
	slices.Sort(want)
	if got := walkAll(e.dir); !slices.Equal(got, want) {
		e.t.Fatalf("walk %s: %v, want %v", e.dir, got, want)
	}
	if got, want := walkAll(e.name("a/b")), []string{e.name("a/b/2"), e.name("a/b/c/3")}; !slices.Equal(got, want) {
		e.t.Fatalf("walk a/b: %v, want %v", got, want)
	}
	if got := walkAll(e.name("missing")); len(got) != 0 {
		e.t.Fatalf("walk of a missing folder: %v", got)
	}

	stop := errors.New("stop here")
	calls := 0
	err := e.relay.Walk(e.ctx, e.dir, func(storage.Entry) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		e.t.Fatalf("walk with a failing callback: %v after %d calls; want %v after 1", err, calls, stop)
	}
}

func testDelete(e *env) {
	name := e.name("gone")
	e.put(name, data(name, 100))
	if err := e.relay.Delete(e.ctx, name); err != nil {
		e.t.Fatalf("delete: %v", err)
	}
	_, err := e.relay.Stat(e.ctx, name)
	e.wantKind(err, storage.KindNotFound, "stat after delete")
	if !errors.Is(err, storage.ErrNotFound) {
		e.t.Fatalf("errors.Is(%v, ErrNotFound) = false", err)
	}
	e.wantKind(e.relay.Delete(e.ctx, name), storage.KindNotFound, "delete of a missing object")
	_, err = e.relay.Open(e.ctx, name, 0, -1)
	e.wantKind(err, storage.KindNotFound, "open of a missing object")
}

// testKeepListed: objects opened after KeepListed of their folder read as
// before, ranges included; one deleted, written anew or overwritten through
// the relay since reads as it is now.
func testKeepListed(e *env) {
	defer e.relay.ForgetListed()
	a, b := data("a", 3000), data("b", 700)
	e.put(e.name("a"), a)
	e.put(e.name("b"), b)
	e.put(e.name("sub/c"), data("c", 10))
	n, err := e.relay.KeepListed(e.ctx, e.dir)
	if err != nil || n != 2 {
		e.t.Fatalf("KeepListed: %d objects, %v; want the 2 of the folder", n, err)
	}
	e.wantSame(e.read(e.name("a"), 0, -1), a, "listed object")
	e.wantSame(e.read(e.name("a"), 100, 50), a[100:150], "range of a listed object")
	e.wantSame(e.read(e.name("b"), 0, -1), b, "listed object")
	if err := e.relay.Delete(e.ctx, e.name("b")); err != nil {
		e.t.Fatalf("delete: %v", err)
	}
	_, err = e.relay.Open(e.ctx, e.name("b"), 0, -1)
	e.wantKind(err, storage.KindNotFound, "open of a listed object deleted since")
	d := data("d", 100)
	e.put(e.name("d"), d)
	e.wantSame(e.read(e.name("d"), 0, -1), d, "object written after the listing")
	a2 := data("a2", 5000)
	e.put(e.name("a"), a2)
	e.wantSame(e.read(e.name("a"), 0, -1), a2, "listed object overwritten since")
	if n, err := e.relay.KeepListed(e.ctx, e.name("missing")); err != nil || n != 0 {
		e.t.Fatalf("KeepListed of a missing folder: %d, %v", n, err)
	}
}

func testOverwrite(e *env) {
	name := e.name("twice")
	e.put(name, data("first", 2000))
	second := data("second", 500)
	e.put(name, second)
	e.wantSame(e.read(name, 0, -1), second, "after overwrite")
	if st, err := e.relay.Stat(e.ctx, name); err != nil || st.Size != 500 {
		e.t.Fatalf("stat after overwrite: %+v, %v", st, err)
	}
}

func testPutIfAbsent(e *env) {
	name := e.name("once")
	first := data("first", 300)
	if _, err := e.relay.PutIfAbsent(e.ctx, name, bytes.NewReader(first), int64(len(first))); err != nil {
		e.t.Fatalf("first put if absent: %v", err)
	}
	second := data("second", 300)
	_, err := e.relay.PutIfAbsent(e.ctx, name, bytes.NewReader(second), int64(len(second)))
	e.wantKind(err, storage.KindExists, "second put if absent")
	if !errors.Is(err, storage.ErrExists) {
		e.t.Fatalf("errors.Is(%v, ErrExists) = false", err)
	}
	e.wantSame(e.read(name, 0, -1), first, "after a refused put if absent")
}

func testMove(e *env) {
	src, dst := e.name("src"), e.name("sub/dst")
	b := data(src, 4000)
	e.put(src, b)
	err := e.relay.Move(e.ctx, src, dst)
	if !e.feat.ServerSideMove && !e.feat.ServerSideCopy {
		e.wantKind(err, storage.KindUnsupported, "move without server-side move or copy")
		e.wantSame(e.read(src, 0, -1), b, "source after a refused move")
		return
	}
	if err != nil {
		e.t.Fatalf("move: %v", err)
	}
	_, err = e.relay.Stat(e.ctx, src)
	e.wantKind(err, storage.KindNotFound, "stat of the moved source")
	e.wantSame(e.read(dst, 0, -1), b, "moved object")

	other := e.name("other")
	e.put(other, data(other, 99))
	if err := e.relay.Move(e.ctx, dst, other); err != nil {
		e.t.Fatalf("move onto an existing object: %v", err)
	}
	e.wantSame(e.read(other, 0, -1), b, "object moved over another")
	e.wantKind(e.relay.Move(e.ctx, e.name("missing"), e.name("x")), storage.KindNotFound, "move of a missing object")
}

func testPurge(e *env) {
	for _, f := range []string{"p/1", "p/q/2", "p/q/r/3"} {
		e.put(e.name(f), data(f, 10))
	}
	keep := e.name("kept")
	e.put(keep, data(keep, 10))
	if err := e.relay.Purge(e.ctx, e.name("p")); err != nil {
		e.t.Fatalf("purge: %v", err)
	}
	var left []string
	if err := e.relay.Walk(e.ctx, e.dir, func(en storage.Entry) error {
		left = append(left, en.Name)
		return nil
	}); err != nil {
		e.t.Fatalf("walk after purge: %v", err)
	}
	if !slices.Equal(left, []string{keep}) {
		e.t.Fatalf("after purge: %v, want only %s", left, keep)
	}
	if list, err := e.relay.List(e.ctx, e.dir); err != nil || len(list) != 1 || list[0].Name != keep {
		e.t.Fatalf("list after purge: %+v, %v; want only %s", list, err, keep)
	}
	if err := e.relay.Purge(e.ctx, e.name("p")); err != nil {
		e.t.Fatalf("purge of a missing folder: %v", err)
	}
}

func testRmdir(e *env) {
	name := e.name("r/x")
	e.put(name, data(name, 10))
	if !e.feat.BucketBased {
		if err := e.relay.Rmdir(e.ctx, e.name("r")); err == nil {
			e.t.Fatalf("rmdir of a folder that is not empty succeeded")
		}
	}
	if err := e.relay.Delete(e.ctx, name); err != nil {
		e.t.Fatalf("delete: %v", err)
	}
	if err := e.relay.Rmdir(e.ctx, e.name("r")); err != nil {
		e.t.Fatalf("rmdir of an empty folder: %v", err)
	}
	list, err := e.relay.List(e.ctx, e.dir)
	if err != nil || len(list) != 0 {
		e.t.Fatalf("list after rmdir: %+v, %v; want empty", list, err)
	}
}

func testAbout(e *env) {
	u, err := e.relay.About(e.ctx)
	if !e.feat.About {
		e.wantKind(err, storage.KindUnsupported, "about on a backend without About")
		return
	}
	if storage.KindOf(err) == storage.KindUnsupported {
		e.t.Logf("backend has About but this server does not tell: %v", err)
		return
	}
	if err != nil {
		e.t.Fatalf("about: %v", err)
	}
	if u.Total < -1 || u.Used < -1 || u.Free < -1 || (u.Total >= 0 && u.Used > u.Total) || (u.Total >= 0 && u.Free > u.Total) {
		e.t.Fatalf("about: inconsistent usage %+v", u)
	}
	e.t.Logf("usage: %+v", u)
}

func testNames(e *env) {
	for _, n := range []string{
		"with space/file name.txt",
		"ünïcödé/日本語 ✓ файл.bin",
		"punct/a+b=c,d;e@f (1)#2.txt",
	} {
		name := e.name(n)
		b := data(name, 321)
		if st := e.put(name, b); st.Name != name {
			e.t.Fatalf("put %q: entry name %q", name, st.Name)
		}
		if st, err := e.relay.Stat(e.ctx, name); err != nil || st.Name != name || st.Size != 321 {
			e.t.Fatalf("stat %q: %+v, %v", name, st, err)
		}
		parent := name[:strings.LastIndex(name, "/")]
		list, err := e.relay.List(e.ctx, parent)
		if err != nil || len(list) != 1 || list[0].Name != name {
			e.t.Fatalf("list %q: %+v, %v", parent, list, err)
		}
		e.wantSame(e.read(name, 0, -1), b, name)
		if err := e.relay.Delete(e.ctx, name); err != nil {
			e.t.Fatalf("delete %q: %v", name, err)
		}
	}
}

func testConcurrency(e *env) {
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			name := e.name(fmt.Sprintf("c/%02d", i))
			b := data(name, 64<<10+i)
			if _, err := e.relay.Put(e.ctx, name, bytes.NewReader(b), int64(len(b))); err != nil {
				errs <- fmt.Errorf("put %s: %w", name, err)
			}
		})
	}
	wg.Wait()
	for i := range n {
		wg.Go(func() {
			name := e.name(fmt.Sprintf("c/%02d", i))
			rc, err := e.relay.Open(e.ctx, name, 0, -1)
			if err != nil {
				errs <- err
				return
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				errs <- err
			} else if !bytes.Equal(got, data(name, 64<<10+i)) {
				errs <- fmt.Errorf("%s: content differs", name)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Error(err)
	}
	if list, err := e.relay.List(e.ctx, e.name("c")); err != nil || len(list) != n {
		e.t.Fatalf("list after %d parallel puts: %d entries, %v", n, len(list), err)
	}
}

func testInvalidNames(e *env) {
	bad := []string{
		"/abs", "../x", "a/../b", "a//b", "./a", "a/", "a/.", "..", ".",
		"nul\x00byte", `back\slash`, "line\nfeed", "cr\rhere", "bad\xffutf8",
		e.dir + "/../../escape",
	}
	ok := e.name("ok")
	e.put(ok, data(ok, 10))
	wantInvalid := func(err error, what string) {
		e.t.Helper()
		e.wantKind(err, storage.KindFatal, what)
		if !errors.Is(err, storage.ErrInvalidName) {
			e.t.Fatalf("%s: %v does not wrap ErrInvalidName", what, err)
		}
	}
	body := func() io.Reader { return strings.NewReader("x") }
	for _, name := range append([]string{""}, bad...) {
		q := fmt.Sprintf("%q", name)
		_, err := e.relay.Put(e.ctx, name, body(), 1)
		wantInvalid(err, "put "+q)
		_, err = e.relay.PutIfAbsent(e.ctx, name, body(), 1)
		wantInvalid(err, "put if absent "+q)
		_, err = e.relay.Stat(e.ctx, name)
		wantInvalid(err, "stat "+q)
		_, err = e.relay.Open(e.ctx, name, 0, -1)
		wantInvalid(err, "open "+q)
		wantInvalid(e.relay.Delete(e.ctx, name), "delete "+q)
		wantInvalid(e.relay.Move(e.ctx, ok, name), "move to "+q)
		wantInvalid(e.relay.Move(e.ctx, name, ok), "move from "+q)
		wantInvalid(e.relay.Purge(e.ctx, name), "purge "+q)
	}
	for _, dir := range bad {
		q := fmt.Sprintf("%q", dir)
		_, err := e.relay.List(e.ctx, dir)
		wantInvalid(err, "list "+q)
		wantInvalid(e.relay.Walk(e.ctx, dir, func(storage.Entry) error { return nil }), "walk "+q)
		wantInvalid(e.relay.Rmdir(e.ctx, dir), "rmdir "+q)
	}
	e.wantSame(e.read(ok, 0, -1), data(ok, 10), "the valid object after refused calls")
}

func testErrorsCarryOpAndName(e *env) {
	name := e.name("absent")
	_, err := e.relay.Stat(e.ctx, name)
	var se *storage.Error
	if !errors.As(err, &se) || se.Op != "stat" || se.Name != name || se.Kind != storage.KindNotFound {
		e.t.Fatalf("stat of a missing object: %#v, want *storage.Error{Op: stat, Name: %s, Kind: not found}", err, name)
	}
	if !strings.Contains(err.Error(), name) {
		e.t.Fatalf("error %q does not name %s", err, name)
	}
}
