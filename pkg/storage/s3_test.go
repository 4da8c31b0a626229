package storage_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/escale-sync/escale/pkg/storage"
	"github.com/escale-sync/escale/pkg/storage/testserver"
)

// TestPutIfAbsentIsConditionalOnS3 runs rclone's S3 server behind a
// recording proxy: PutIfAbsent must send "If-None-Match: *" (plain Put must
// not), and a 412 from the server (another client created the object between
// our check and our upload) must come back as KindExists.
func TestPutIfAbsentIsConditionalOnS3(t *testing.T) {
	testConfig(t)
	srv := testserver.RcloneS3(t)
	upstream, err := url.Parse("http://" + srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		puts      = map[string]string{} // path -> If-None-Match of its PUT
		racedWith atomic.Bool           // answer conditional PUTs with 412
	)
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			mu.Lock()
			puts[r.URL.Path] = r.Header.Get("If-None-Match")
			mu.Unlock()
			if racedWith.Load() && r.Header.Get("If-None-Match") == "*" {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusPreconditionFailed)
				_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>`))
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	spec := strings.Replace(srv.Spec, "http://"+srv.Addr, front.URL, 1)
	if spec == srv.Spec {
		t.Fatalf("cannot find the endpoint %s in %s", srv.Addr, srv.Spec)
	}
	r := openRelay(t, spec)
	if !r.Features().ConditionalCreate {
		t.Fatalf("s3 relay without ConditionalCreate: %+v", r.Features())
	}
	ctx := context.Background()
	header := func(key string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		for path, v := range puts {
			if strings.HasSuffix(path, "/"+key) {
				return v, true
			}
		}
		return "", false
	}

	if _, err := r.PutIfAbsent(ctx, "cond", strings.NewReader("one"), 3); err != nil {
		t.Fatalf("put if absent: %v", err)
	}
	if v, ok := header("cond"); !ok || v != "*" {
		t.Fatalf("PutIfAbsent's PUT had If-None-Match %q (seen %v), want *", v, ok)
	}
	if _, err := r.Put(ctx, "plain", strings.NewReader("two"), 3); err != nil {
		t.Fatalf("put: %v", err)
	}
	if v, ok := header("plain"); !ok || v != "" {
		t.Fatalf("Put's PUT had If-None-Match %q (seen %v), want none", v, ok)
	}

	racedWith.Store(true)
	_, err = r.PutIfAbsent(ctx, "raced", strings.NewReader("three"), 5)
	if storage.KindOf(err) != storage.KindExists {
		t.Fatalf("put if absent refused by the server: %v, want kind exists", err)
	}
	if _, err := r.Stat(ctx, "raced"); storage.KindOf(err) != storage.KindNotFound {
		t.Fatalf("stat of the refused object: %v", err)
	}
}
