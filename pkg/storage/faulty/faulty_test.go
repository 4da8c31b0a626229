package faulty_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/storage"
	"github.com/escale-sync/escale/pkg/storage/faulty"
)

var ids atomic.Int64

// open wraps a fresh local folder and opens it as a relay through the real
// storage adapter.
func open(t *testing.T, o ...storage.OpenOption) (*storage.Relay, *faulty.Injector, string) {
	t.Helper()
	dir := t.TempDir()
	inj := faulty.New()
	spec, unregister := faulty.Register(fmt.Sprintf("%s-%d", t.Name(), ids.Add(1)), inj, dir)
	t.Cleanup(unregister)
	o = append([]storage.OpenOption{storage.WithBackoff(time.Millisecond, 2*time.Millisecond)}, o...)
	r, err := storage.Open(context.Background(), spec, o...)
	if err != nil {
		t.Fatalf("open %s: %v", spec, err)
	}
	t.Cleanup(func() { r.Close() })
	return r, inj, dir
}

// opaque hides the Seeker of a body, so the relay cannot retry its upload
// (escale's streamed uploads are pipes).
type opaque struct{ io.Reader }

func get(t *testing.T, r *storage.Relay, name string) string {
	t.Helper()
	rc, err := r.Open(context.Background(), name, 0, -1)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(data)
}

func TestTransientFaultIsRetried(t *testing.T) {
	r, inj, _ := open(t)
	ctx := context.Background()
	inj.FailNext(1, faulty.Transient)
	if _, err := r.Put(ctx, "a/b", strings.NewReader("hello"), 5); err != nil {
		t.Fatalf("a single transient fault was not absorbed by the relay's retry: %v", err)
	}
	if n := inj.Count(faulty.OpPut); n != 2 {
		t.Fatalf("%d puts, want 2 (the failed one and its retry)", n)
	}
	if got := get(t, r, "a/b"); got != "hello" {
		t.Fatalf("read back %q", got)
	}
	if inj.Disarm() != 0 || len(inj.Injected()) != 1 {
		t.Fatalf("injected %v", inj.Injected())
	}
}

func TestFaultsOutlastRetries(t *testing.T) {
	r, inj, _ := open(t, storage.WithRetries(2))
	ctx := context.Background()
	inj.FailNext(2, faulty.Transient)
	_, err := r.Put(ctx, "x", strings.NewReader("x"), 1)
	if storage.KindOf(err) != storage.KindTransient {
		t.Fatalf("put under two transient faults with two tries: %v, want a transient error", err)
	}
	inj.Add(faulty.Rule{Op: faulty.OpNewObject, Fault: faulty.NotFound})
	if _, err := r.Put(ctx, "y", strings.NewReader("y"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Stat(ctx, "y"); storage.KindOf(err) != storage.KindNotFound {
		t.Fatalf("stat under a not-found fault: %v", err)
	}
	if _, err := r.Stat(ctx, "y"); err != nil {
		t.Fatalf("the rule fired more than once: %v", err)
	}
	inj.FailNext(1, faulty.Reset)
	if _, err := r.List(ctx, ""); err != nil {
		t.Fatalf("a reset on a list was not retried: %v", err)
	}
	inj.Add(faulty.Rule{Op: faulty.OpList, Times: 2, Fault: faulty.Reset})
	if _, err := r.List(ctx, ""); storage.KindOf(err) != storage.KindTransient || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("list under two resets: %v", err)
	}
}

func TestBrokenReadResumes(t *testing.T) {
	r, inj, _ := open(t)
	ctx := context.Background()
	body := strings.Repeat("0123456789", 1000)
	if _, err := r.Put(ctx, "obj", strings.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	inj.Add(faulty.Rule{Op: faulty.OpOpen, Fault: faulty.Reset})
	if got := get(t, r, "obj"); got != body {
		t.Fatalf("read after a broken stream: %d bytes, want %d", len(got), len(body))
	}
	if n := inj.Count(faulty.OpOpen); n != 2 {
		t.Fatalf("%d opens, want 2 (the broken stream and its resumption)", n)
	}
	if got := inj.Injected(); len(got) != 1 || !strings.Contains(got[0], "reset on open") {
		t.Fatalf("injected %v", got)
	}
}

func TestPartialAndLostReplyPuts(t *testing.T) {
	r, inj, dir := open(t)
	ctx := context.Background()
	body := strings.Repeat("z", 1000)

	inj.Add(faulty.Rule{Op: faulty.OpPut, Name: "data/*", Fault: faulty.PartialPut})
	if _, err := r.Put(ctx, "data/p", opaque{strings.NewReader(body)}, int64(len(body))); err == nil {
		t.Fatal("a partial put reported success")
	}
	if got, err := os.ReadFile(filepath.Join(dir, "data", "p")); err != nil || len(got) != len(body)/2 {
		t.Fatalf("after a partial put the storage holds %d bytes (%v), want %d", len(got), err, len(body)/2)
	}

	inj.Add(faulty.Rule{Op: faulty.OpPut, Name: "data/*", Fault: faulty.PutThenFail})
	_, err := r.Put(ctx, "data/q", opaque{strings.NewReader(body)}, int64(len(body)))
	if storage.KindOf(err) != storage.KindTransient {
		t.Fatalf("a put whose reply was lost: %v, want a transient error", err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "data", "q")); err != nil || string(got) != body {
		t.Fatalf("after a lost reply the storage holds %d bytes (%v), want the whole object", len(got), err)
	}

	// Streamed uploads (size -1, as escale's sealed objects) go through the
	// same faults.
	big := bytes.Repeat([]byte("stream"), 100_000)
	inj.Add(faulty.Rule{Op: faulty.OpPut, Fault: faulty.PartialPut})
	if _, err := r.Put(ctx, "data/s", opaque{bytes.NewReader(big)}, -1); err == nil {
		t.Fatal("a partial streamed put reported success")
	}
	if fi, err := os.Stat(filepath.Join(dir, "data", "s")); err != nil || fi.Size() != int64(len(big)/2) {
		t.Fatalf("after a partial streamed put: %v, %v", fi, err)
	}
	// A seekable body is retried over a partial put and ends whole.
	inj.Add(faulty.Rule{Op: faulty.OpPut, Fault: faulty.PartialPut})
	if _, err := r.Put(ctx, "data/s", bytes.NewReader(big), int64(len(big))); err != nil {
		t.Fatal(err)
	}
	if got := get(t, r, "data/s"); got != string(big) {
		t.Fatalf("retried put left %d bytes", len(got))
	}
}

func TestRulesMatchOpNameAndCount(t *testing.T) {
	r, inj, _ := open(t, storage.WithRetries(1))
	ctx := context.Background()
	inj.Add(faulty.Rule{Op: faulty.OpPut, Name: "heads/*", After: 1, Times: 2, Fault: faulty.Transient})
	put := func(name string) error {
		_, err := r.Put(ctx, name, strings.NewReader(""), 0)
		return err
	}
	for i, c := range []struct {
		name string
		fail bool
	}{{"heads/a", false}, {"clients/x/log/1", false}, {"heads/b", true}, {"heads/c", true}, {"heads/d", false}} {
		if err := put(c.name); (err != nil) != c.fail {
			t.Fatalf("put %d %s: %v, want failure %v", i, c.name, err, c.fail)
		}
	}
	if n := inj.Count(faulty.OpPut); n != 5 {
		t.Fatalf("counted %d puts, want 5", n)
	}
	inj.Add(faulty.Rule{Op: faulty.OpRemove, Fault: faulty.Transient})
	if err := r.Delete(ctx, "heads/a"); err == nil {
		t.Fatal("delete under a fault succeeded without retries")
	}
	if inj.Count(faulty.OpRemove) != 1 || inj.Count(faulty.OpNewObject) == 0 {
		t.Fatalf("remove %d, newobject %d", inj.Count(faulty.OpRemove), inj.Count(faulty.OpNewObject))
	}
	inj.Add(faulty.Rule{Op: faulty.OpPut, Times: 3, Fault: faulty.Transient})
	if left := inj.Disarm(); left != 3 {
		t.Fatalf("disarm reported %d faults left, want 3", left)
	}
	if err := put("heads/e"); err != nil {
		t.Fatalf("a disarmed rule fired: %v", err)
	}
}

func TestListingLag(t *testing.T) {
	r, inj, _ := open(t)
	ctx := context.Background()
	names := func(dir string) string {
		entries, err := r.List(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, filepath.Base(e.Name))
		}
		return strings.Join(out, ",")
	}
	put := func(name string) {
		if _, err := r.Put(ctx, name, strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	put("heads/old")
	inj.SetListLag(2)
	put("heads/new")
	put("heads/old") // an overwrite is not a new object: it stays listed
	if _, err := r.Stat(ctx, "heads/new"); err != nil {
		t.Fatalf("a lagging object must be readable by name: %v", err)
	}
	for i := range 2 {
		if got := names("heads"); got != "old" {
			t.Fatalf("listing %d during the lag: %q", i, got)
		}
	}
	if got := names("heads"); got != "new,old" {
		t.Fatalf("listing after the lag: %q", got)
	}
	put("heads/later")
	inj.Reveal()
	if got := names("heads"); got != "later,new,old" {
		t.Fatalf("listing after Reveal: %q", got)
	}
	inj.SetListLag(0)
	put("heads/last")
	if got := names("heads"); got != "last,later,new,old" {
		t.Fatalf("listing with the lag stopped: %q", got)
	}
	var walked int
	if err := r.Walk(ctx, "", func(storage.Entry) error { walked++; return nil }); err != nil || walked != 4 {
		t.Fatalf("walk saw %d objects (%v), want 4", walked, err)
	}
}

func TestUnregisteredID(t *testing.T) {
	dir := t.TempDir()
	spec, unregister := faulty.Register(fmt.Sprintf("gone-%d", ids.Add(1)), faulty.New(), dir)
	unregister()
	_, err := storage.Open(context.Background(), spec, storage.WithRetries(1))
	if err == nil || !strings.Contains(err.Error(), "faulty.Register") {
		t.Fatalf("open with an unregistered id: %v", err)
	}
}

func TestWrapsAnyRemote(t *testing.T) {
	inj := faulty.New()
	bucket := fmt.Sprintf(":memory:faulty-%d", ids.Add(1))
	spec, unregister := faulty.Register(fmt.Sprintf("mem-%d", ids.Add(1)), inj, bucket)
	defer unregister()
	ctx := context.Background()
	r, err := storage.Open(ctx, spec, storage.WithBackoff(time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatalf("open %s: %v", spec, err)
	}
	defer r.Close()
	inj.FailNext(1, faulty.Reset)
	if _, err := r.Put(ctx, "clients/x/log/1", strings.NewReader("manifest"), 8); err != nil {
		t.Fatal(err)
	}
	if got := get(t, r, "clients/x/log/1"); got != "manifest" {
		t.Fatalf("read back %q", got)
	}
	// The object is in the wrapped remote, not somewhere of the wrapper's own.
	plain, err := storage.Open(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if got := get(t, plain, "clients/x/log/1"); got != "manifest" {
		t.Fatalf("the wrapped remote holds %q", got)
	}
	if inj.Count(faulty.OpPut) != 2 || len(inj.Injected()) != 1 {
		t.Fatalf("puts %d, injected %v", inj.Count(faulty.OpPut), inj.Injected())
	}
}
