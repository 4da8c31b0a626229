package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/escale-sync/escale/pkg/storage"
	"github.com/escale-sync/escale/pkg/storage/testserver"
)

// lockRelays are the relays the lock tests run on: the local disk and
// WebDAV (listing-based locks), S3 (native conditional create).
func lockRelays(t *testing.T) map[string]func(t *testing.T) string {
	t.Helper()
	if err := storage.Init(storage.Options{RcloneConfig: filepath.Join(os.TempDir(), "escale-protocol-test-none.conf")}); err != nil {
		t.Fatal(err)
	}
	return map[string]func(t *testing.T) string{
		"local":  func(t *testing.T) string { return t.TempDir() },
		"webdav": func(t *testing.T) string { return testserver.RcloneWebDAV(t).Spec },
		"s3":     func(t *testing.T) string { return testserver.RcloneS3(t).Spec },
	}
}

// lockRepos creates an encrypted repository on spec and opens it n times,
// each with its own relay handle, as n separate clients would.
func lockRepos(t *testing.T, spec string, n int) []*Repo {
	t.Helper()
	ctx := context.Background()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	creds := Credentials{Identity: id}
	open := func() *storage.Relay {
		r, err := storage.Open(ctx, spec)
		if err != nil {
			t.Fatalf("open %s: %v", spec, err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	if _, err := Create(ctx, open(), true, creds); err != nil {
		t.Fatalf("create: %v", err)
	}
	repos := make([]*Repo, n)
	for i := range repos {
		if repos[i], err = Open(ctx, open(), true, creds); err != nil {
			t.Fatalf("open repo: %v", err)
		}
	}
	return repos
}

const testSettle = 30 * time.Millisecond

// TestLockMutualExclusion: clients with their own relay handles contend for
// one lock; the counter inside the critical section never exceeds one.
func TestLockMutualExclusion(t *testing.T) {
	for name, spec := range lockRelays(t) {
		t.Run(name, func(t *testing.T) {
			if testing.Short() && name != "local" {
				t.Skip("slow on servers; run without -short")
			}
			const clients, rounds = 4, 2
			repos := lockRepos(t, spec(t), clients)
			var inside, entered, overlaps atomic.Int32
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for i, repo := range repos {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range rounds {
						l, err := repo.AcquireLock(context.Background(), "admin", LockOptions{
							Owner: fmt.Sprintf("client-%d", i), Timeout: time.Minute, Wait: time.Minute, Settle: testSettle})
						if err != nil {
							errs <- err
							return
						}
						if inside.Add(1) != 1 {
							overlaps.Add(1)
						}
						entered.Add(1)
						time.Sleep(10 * time.Millisecond)
						inside.Add(-1)
						if err := l.Release(context.Background()); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("client: %v", err)
			}
			if n := overlaps.Load(); n != 0 {
				t.Fatalf("%d times a client took the lock while another held it", n)
			}
			if got := entered.Load(); got != clients*rounds {
				t.Fatalf("the lock was taken %d times, want %d", got, clients*rounds)
			}
			assertNoLockEntries(t, repos[0])
		})
	}
}

func assertNoLockEntries(t *testing.T, r *Repo) {
	t.Helper()
	entries, err := r.Relay.List(context.Background(), LocksDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir {
			t.Errorf("lock entry left behind: %s", e.Name)
		}
	}
}

// TestLockHeldRefusesAndNamesOwner: Wait 0 on a held lock fails at once with
// ErrLocked naming the holder; the owner never shows in clear on the relay;
// Release is idempotent and frees the lock.
func TestLockHeldRefusesAndNamesOwner(t *testing.T) {
	for name, spec := range lockRelays(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			repos := lockRepos(t, spec(t), 2)
			o := LockOptions{Owner: "laptop-of-alice", Timeout: time.Minute, Settle: testSettle}
			held, err := repos[0].AcquireLock(ctx, "admin", o)
			if err != nil {
				t.Fatal(err)
			}
			_, err = repos[1].AcquireLock(ctx, "admin", LockOptions{Owner: "desk", Timeout: time.Minute, Settle: testSettle})
			if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "laptop-of-alice") {
				t.Fatalf("second acquire: %v; want ErrLocked naming laptop-of-alice", err)
			}
			// Another lock name is independent.
			other, err := repos[1].AcquireLock(ctx, "init", LockOptions{Owner: "desk", Timeout: time.Minute, Settle: testSettle})
			if err != nil {
				t.Fatalf("a lock of another name: %v", err)
			}
			if err := other.Release(ctx); err != nil {
				t.Fatal(err)
			}

			entries, err := repos[0].Relay.List(ctx, LocksDir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Fatalf("locks/ holds %v, want the holder's entry only (the refused attempt cleans up)", entries)
			}
			rc, err := repos[0].Relay.Open(ctx, entries[0].Name, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(rc)
			rc.Close()
			if strings.Contains(string(raw), "alice") {
				t.Fatal("the lock owner is readable on the relay")
			}

			if err := held.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if err := held.Release(ctx); err != nil {
				t.Fatalf("second release: %v", err)
			}
			again, err := repos[1].AcquireLock(ctx, "admin", LockOptions{Owner: "desk", Timeout: time.Minute, Settle: testSettle})
			if err != nil {
				t.Fatalf("acquire after release: %v", err)
			}
			if err := again.Release(ctx); err != nil {
				t.Fatal(err)
			}
			assertNoLockEntries(t, repos[0])
		})
	}
}

// TestLockStaleIsBroken: a holder that stops its heartbeat (a crash) loses
// the lock to a waiter once lock_timeout has passed; a live holder, whose
// heartbeat runs, keeps it however long it holds.
func TestLockStaleIsBroken(t *testing.T) {
	for name, spec := range lockRelays(t) {
		t.Run(name, func(t *testing.T) {
			if testing.Short() && name != "local" {
				t.Skip("waits for expiry; run without -short")
			}
			ctx := context.Background()
			repos := lockRepos(t, spec(t), 2)
			const timeout = 2 * time.Second // heartbeats every 2/3 s: room for a loaded machine
			live, err := repos[0].AcquireLock(ctx, "admin", LockOptions{Owner: "live", Timeout: timeout, Settle: testSettle})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * timeout)
			if _, err := repos[1].AcquireLock(ctx, "admin", LockOptions{Owner: "other", Timeout: timeout, Settle: testSettle}); !errors.Is(err, ErrLocked) {
				t.Fatalf("a lock with a running heartbeat was taken: %v", err)
			}
			if err := live.Release(ctx); err != nil {
				t.Fatal(err)
			}

			crashed, err := repos[0].AcquireLock(ctx, "admin", LockOptions{Owner: "crashed", Timeout: timeout, Settle: testSettle})
			if err != nil {
				t.Fatal(err)
			}
			crashed.stop() // the process dies: no heartbeat, no release
			<-crashed.done
			l, err := repos[1].AcquireLock(ctx, "admin", LockOptions{Owner: "waiter", Timeout: timeout, Wait: time.Minute, Settle: testSettle})
			if err != nil {
				t.Fatalf("waiting for a stale lock: %v", err)
			}
			entries, err := repos[1].Relay.List(ctx, LocksDir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].Name != l.object {
				t.Fatalf("locks/ holds %v, want only the new holder's %s", entries, l.object)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLockLost: when the lock's entry disappears (broken by another client),
// the holder's heartbeat notices and closes Lost, and Release then deletes
// nothing of anyone else's.
func TestLockLost(t *testing.T) {
	for name, spec := range lockRelays(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			repos := lockRepos(t, spec(t), 2)
			l, err := repos[0].AcquireLock(ctx, "admin", LockOptions{Owner: "a", Timeout: 300 * time.Millisecond, Settle: testSettle})
			if err != nil {
				t.Fatal(err)
			}
			if err := repos[1].Relay.Delete(ctx, l.object); err != nil {
				t.Fatal(err)
			}
			select {
			case <-l.Lost():
			case <-time.After(time.Minute):
				t.Fatal("Lost was not closed after the lock entry vanished")
			}
			next, err := repos[1].AcquireLock(ctx, "admin", LockOptions{Owner: "b", Timeout: time.Minute, Settle: testSettle})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := repos[0].AcquireLock(ctx, "admin", LockOptions{Owner: "a", Timeout: time.Minute, Settle: testSettle}); !errors.Is(err, ErrLocked) {
				t.Fatalf("the lost holder's Release freed b's lock: %v", err)
			}
			if err := next.Release(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLockNameValidated(t *testing.T) {
	r := &Repo{}
	for _, name := range []string{"", "Admin", "a/b", "a.b", "../x", strings.Repeat("a", 65)} {
		if _, err := r.AcquireLock(context.Background(), name, LockOptions{}); err == nil {
			t.Errorf("lock name %q accepted", name)
		}
	}
}
