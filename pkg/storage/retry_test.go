package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/webdav"

	"github.com/escale-sync/escale/pkg/storage"
)

// flakyDAV is a real WebDAV server (golang.org/x/net/webdav on a temp
// folder) that fails the next N requests of one method with a status, or
// hangs them until the client gives up, and counts requests per method.
type flakyDAV struct {
	dir     string
	url     string
	dav     http.Handler
	method  string       // the method to disturb
	status  int          // the status to fail with; 0 hangs instead
	failing atomic.Int64 // how many more requests to disturb
	mu      sync.Mutex
	counts  map[string]int
}

func newFlakyDAV(t *testing.T) *flakyDAV {
	t.Helper()
	f := &flakyDAV{dir: t.TempDir(), counts: map[string]int{}}
	f.dav = &webdav.Handler{FileSystem: webdav.Dir(f.dir), LockSystem: webdav.NewMemLS()}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func (f *flakyDAV) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.counts[r.Method]++
	method, status := f.method, f.status
	f.mu.Unlock()
	if r.Method == method && f.failing.Add(-1) >= 0 {
		_, _ = io.Copy(io.Discard, r.Body)
		if status == 0 {
			<-r.Context().Done() // hang until the client's deadline
			return
		}
		http.Error(w, "injected failure", status)
		return
	}
	f.dav.ServeHTTP(w, r)
}

// disturb makes the next n requests of method fail with status (0: hang) and
// resets the counters.
func (f *flakyDAV) disturb(method string, status int, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.method, f.status = method, status
	f.failing.Store(n)
	f.counts = map[string]int{}
}

func (f *flakyDAV) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[method]
}

func (f *flakyDAV) open(t *testing.T, o ...storage.OpenOption) *storage.Relay {
	t.Helper()
	o = append([]storage.OpenOption{storage.WithRetries(5), storage.WithBackoff(time.Millisecond, 5*time.Millisecond)}, o...)
	return openRelay(t, ":webdav,url='"+f.url+"':relay", o...)
}

func TestRetryRecoversFromTransientFailures(t *testing.T) {
	testConfig(t)
	f := newFlakyDAV(t)
	r := f.open(t)
	ctx := context.Background()
	content := []byte("hello relay")
	if _, err := r.Put(ctx, "x", bytes.NewReader(content), int64(len(content))); err != nil {
		t.Fatalf("put: %v", err)
	}

	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		f.disturb("PROPFIND", status, 2)
		st, err := r.Stat(ctx, "x")
		if err != nil || st.Size != int64(len(content)) {
			t.Fatalf("stat through 2 failures (%d): %+v, %v", status, st, err)
		}
		if got := f.count("PROPFIND"); got != 3 {
			t.Fatalf("stat through 2 failures (%d): %d PROPFINDs, want 3 (2 failed tries + 1)", status, got)
		}
	}
}

func TestRetryGivesUpAfterTries(t *testing.T) {
	testConfig(t)
	f := newFlakyDAV(t)
	ctx := context.Background()
	for _, tries := range []int{1, 4} {
		r := f.open(t, storage.WithRetries(tries))
		f.disturb("PROPFIND", http.StatusServiceUnavailable, 1000)
		_, err := r.Stat(ctx, "x")
		if storage.KindOf(err) != storage.KindTransient {
			t.Fatalf("stat against a server that keeps failing: %v, want a transient error", err)
		}
		// Exactly our tries: rclone's own low-level retries must not multiply them.
		if got := f.count("PROPFIND"); got != tries {
			t.Fatalf("with %d tries: %d PROPFINDs", tries, got)
		}
	}
}

func TestRetryRewindsSeekableUpload(t *testing.T) {
	testConfig(t)
	f := newFlakyDAV(t)
	r := f.open(t)
	content := bytes.Repeat([]byte("0123456789"), 10000)
	body := bytes.NewReader(content)
	f.disturb("PUT", http.StatusServiceUnavailable, 2)
	if _, err := r.Put(context.Background(), "dir/obj", body, int64(len(content))); err != nil {
		t.Fatalf("put through 2 failures: %v", err)
	}
	if got := f.count("PUT"); got != 3 {
		t.Fatalf("%d PUTs, want 3", got)
	}
	got, err := os.ReadFile(filepath.Join(f.dir, "relay", "dir", "obj"))
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("server holds %d bytes (%v), want the %d uploaded", len(got), err, len(content))
	}
}

func TestRetryNeverReplaysUnseekableUpload(t *testing.T) {
	testConfig(t)
	f := newFlakyDAV(t)
	r := f.open(t)
	content := bytes.Repeat([]byte("x"), 5000)
	for _, size := range []int64{int64(len(content)), -1} {
		f.disturb("PUT", http.StatusServiceUnavailable, 1)
		_, err := r.Put(context.Background(), "obj", io.MultiReader(bytes.NewReader(content)), size)
		if storage.KindOf(err) != storage.KindTransient {
			t.Fatalf("size %d: unseekable upload through a 503: %v, want a transient error", size, err)
		}
		if got := f.count("PUT"); got != 1 {
			t.Fatalf("size %d: %d PUTs for an unseekable body, want 1", size, got)
		}
	}
}

func TestRetryAfterAttemptTimeout(t *testing.T) {
	testConfig(t)
	f := newFlakyDAV(t)
	r := f.open(t, storage.WithTimeout(300*time.Millisecond))
	ctx := context.Background()
	if _, err := r.Put(ctx, "x", bytes.NewReader([]byte("abc")), 3); err != nil {
		t.Fatal(err)
	}
	f.disturb("PROPFIND", 0, 1) // the first try hangs past its deadline
	if _, err := r.Stat(ctx, "x"); err != nil {
		t.Fatalf("stat after a hung try: %v", err)
	}
	if got := f.count("PROPFIND"); got != 2 {
		t.Fatalf("%d PROPFINDs, want 2 (one hung, one answered)", got)
	}

	f.disturb("PROPFIND", 0, 1000)
	_, err := openRelay(t, ":webdav,url='"+f.url+"':relay", storage.WithRetries(2),
		storage.WithTimeout(100*time.Millisecond), storage.WithBackoff(time.Millisecond, time.Millisecond)).Stat(ctx, "x")
	if storage.KindOf(err) != storage.KindTransient || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stat against a hanging server: %v, want a transient deadline error", err)
	}
}

func TestCallerCancellationStopsRetrying(t *testing.T) {
	testConfig(t)
	f := newFlakyDAV(t)
	r := f.open(t, storage.WithRetries(1000), storage.WithBackoff(time.Millisecond, time.Millisecond))
	f.disturb("PROPFIND", http.StatusServiceUnavailable, 1<<40)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for f.count("PROPFIND") < 3 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := r.Stat(ctx, "x")
	if err == nil || storage.KindOf(err) != storage.KindTransient {
		t.Fatalf("stat cancelled while retrying: %v", err)
	}
	if got := f.count("PROPFIND"); got >= 1000 {
		t.Fatalf("cancellation did not stop the retries: %d tries", got)
	}
}
