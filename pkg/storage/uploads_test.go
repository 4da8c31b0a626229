package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/storage"
	"github.com/escale-sync/escale/pkg/storage/testserver"
)

// multipartTemp is the prefix of the object rclone serve s3 writes a
// multipart upload's parts to until it completes or is aborted.
const multipartTemp = ".rclone_temp_multipart_"

// cutMultipartUpload starts a streamed Put of name on srv through a proxy
// and takes the proxy down once the server has stored the upload's first
// part, as a kill -9 would: rclone's attempt to abort the upload never
// reaches the server, which keeps it open.
func cutMultipartUpload(t *testing.T, srv *testserver.Server, name string) {
	t.Helper()
	upstream, err := url.Parse("http://" + srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	var (
		down     atomic.Bool
		partOnce sync.Once
		partDone = make(chan struct{})
	)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		proxy.ServeHTTP(w, r)
		if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") {
			partOnce.Do(func() { close(partDone) })
		}
	}))
	defer front.Close()
	spec := strings.Replace(srv.Spec, "http://"+srv.Addr, front.URL, 1)
	r := openRelay(t, spec)

	// More than one whole part (rclone's default chunk is 5 MiB; its read
	// ahead fills 1 MiB buffers), then a body that waits: the upload cannot
	// go on, nor end, until the proxy is down.
	release := make(chan struct{})
	body := io.MultiReader(bytes.NewReader(randomBytes(7, 7<<20)), &waitingReader{release: release})
	putErr := make(chan error, 1)
	go func() {
		_, err := r.Put(context.Background(), name, body, -1)
		putErr <- err
	}()
	select {
	case <-partDone:
	case err := <-putErr:
		t.Fatalf("the upload of %s ended before its first part was stored: %v", name, err)
	}
	down.Store(true)
	front.CloseClientConnections()
	close(release)
	if err := <-putErr; err == nil {
		t.Fatalf("the cut upload of %s succeeded", name)
	}
}

// waitingReader blocks until release is closed, then fails.
type waitingReader struct{ release chan struct{} }

func (w *waitingReader) Read([]byte) (int, error) {
	<-w.release
	return 0, errors.New("the process was killed")
}

// multipartTemps lists the temporary multipart objects in dir on the
// server's disk.
func multipartTemps(t *testing.T, srv *testserver.Server, dir string) []string {
	t.Helper()
	got, err := filepath.Glob(filepath.Join(srv.Dir, filepath.FromSlash(dir), multipartTemp+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestAbortIncompleteUploadsOnS3: uploads cut as by a kill -9 stay on the
// S3 server (rclone serve s3 keeps each as a temporary object) until
// AbortIncompleteUploads aborts them: only under the folder it is given,
// and only those older than its age limit.
func TestAbortIncompleteUploadsOnS3(t *testing.T) {
	testConfig(t)
	srv := testserver.RcloneS3(t)
	const mine, other = "clients/mine/data", "clients/other/data"
	cutMultipartUpload(t, srv, mine+"/object")
	cutMultipartUpload(t, srv, other+"/object")
	for _, dir := range []string{mine, other} {
		if got := multipartTemps(t, srv, dir); len(got) != 1 {
			t.Fatalf("after a cut upload the server holds %d temporary multipart objects in %s, want 1: %v", len(got), dir, got)
		}
	}

	r := openRelay(t, srv.Spec)
	ctx := context.Background()
	if err := r.AbortIncompleteUploads(ctx, mine, time.Hour); err != nil {
		t.Fatalf("abort uploads older than an hour: %v", err)
	}
	if got := multipartTemps(t, srv, mine); len(got) != 1 {
		t.Fatalf("an upload younger than the age limit was aborted: %d temporary objects left in %s", len(got), mine)
	}
	if err := r.AbortIncompleteUploads(ctx, mine, 0); err != nil {
		t.Fatalf("abort uploads: %v", err)
	}
	if got := multipartTemps(t, srv, mine); len(got) != 0 {
		t.Fatalf("the sweep left the cut upload's temporary objects in %s: %v", mine, got)
	}
	if got := multipartTemps(t, srv, other); len(got) != 1 {
		t.Fatalf("the sweep of %s reached another folder's upload: %d temporary objects left in %s", mine, len(got), other)
	}
	if _, err := r.Stat(ctx, mine+"/object"); storage.KindOf(err) != storage.KindNotFound {
		t.Fatalf("the aborted upload's object: %v, want not found", err)
	}
	// A second sweep finds nothing to do; the root is refused.
	if err := r.AbortIncompleteUploads(ctx, mine, 0); err != nil {
		t.Fatalf("sweep with nothing to abort: %v", err)
	}
	if err := r.AbortIncompleteUploads(ctx, "", 0); storage.KindOf(err) != storage.KindFatal {
		t.Fatalf("sweep of the relay root: %v, want a refusal", err)
	}
}

// TestAbortIncompleteUploadsElsewhere: backends without multipart uploads
// have nothing to abort.
func TestAbortIncompleteUploadsElsewhere(t *testing.T) {
	testConfig(t)
	dir := t.TempDir()
	r := openRelay(t, dir)
	if _, err := r.Put(context.Background(), "clients/mine/data/kept", strings.NewReader("data"), -1); err != nil {
		t.Fatal(err)
	}
	if err := r.AbortIncompleteUploads(context.Background(), "clients/mine/data", 0); err != nil {
		t.Fatalf("sweep on a local relay: %v", err)
	}
	if _, err := r.Stat(context.Background(), "clients/mine/data/kept"); err != nil {
		t.Fatalf("the sweep touched a finished object: %v", err)
	}
}
