package relayops

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/storage"
	"github.com/escale-sync/escale/pkg/storage/testserver"
)

func initStorage(t *testing.T) {
	t.Helper()
	if err := storage.Init(storage.Options{RcloneConfig: filepath.Join(os.TempDir(), "escale-relayops-test-none.conf")}); err != nil {
		t.Fatal(err)
	}
}

func openRelay(t *testing.T, spec string) *storage.Relay {
	t.Helper()
	r, err := storage.Open(context.Background(), spec)
	if err != nil {
		t.Fatalf("open %s: %v", spec, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// world is a repository on a local relay holding objects of every kind of
// size: empty markers, small sealed-like blobs, a big streamed one.
type world struct {
	relay *storage.Relay
	repo  *protocol.Repo
	creds protocol.Credentials
	objs  map[string][]byte // what was put, besides escale.json and keys/
}

func newWorld(t *testing.T, spec string) *world {
	t.Helper()
	initStorage(t)
	ctx := context.Background()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	w := &world{relay: openRelay(t, spec), creds: protocol.Credentials{Identity: id}, objs: map[string][]byte{}}
	if w.repo, err = protocol.Create(ctx, w.relay, true, w.creds); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	blob := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	cid := strings.Repeat("a", 26)
	w.objs["heads/"+cid+".0000000000000001"] = nil
	w.objs["clients/"+cid+"/log/0000000000000001"] = blob(700)
	w.objs["clients/"+cid+"/acks"] = blob(512)
	w.objs["clients/"+cid+"/data/"+strings.Repeat("b", 26)] = blob(smallObject + 12345) // streamed
	w.objs["clients/"+cid+"/data/"+strings.Repeat("c", 26)] = blob(smallObject)         // read whole
	for name, data := range w.objs {
		if _, err := w.relay.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// snapshot reads every object of a relay but locks/.
func snapshot(t *testing.T, r *storage.Relay) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	out := map[string][]byte{}
	err := r.Walk(ctx, "", func(e storage.Entry) error {
		if strings.HasPrefix(e.Name, "locks/") {
			return nil
		}
		rc, err := r.Open(ctx, e.Name, 0, -1)
		if err != nil {
			return err
		}
		defer rc.Close()
		out[e.Name], err = io.ReadAll(rc)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameObjects(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s is missing", name)
		} else if !bytes.Equal(g, w) {
			t.Errorf("%s differs: %d bytes, want %d", name, len(g), len(w))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("unexpected object %s", name)
		}
	}
}

type countingProgress struct {
	starts int
	total  int64
	done   int64
	onAdd  func()
}

func (p *countingProgress) Start(_ string, total int64) { p.starts++; p.total += total }
func (p *countingProgress) Add(n int64) {
	p.done += n
	if p.onAdd != nil {
		p.onAdd()
		p.onAdd = nil
	}
}
func (p *countingProgress) Finish() {}

// TestBackupRestoreRoundTrip: a backup of a local relay, taken without the
// key, restored into an empty WebDAV relay, gives the same objects byte for
// byte; the repository then opens there with its key; locks are left out.
func TestBackupRestoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, t.TempDir())
	lock, err := w.repo.AcquireLock(ctx, AdminLock, protocol.LockOptions{Owner: "x", Settle: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release(ctx)
	want := snapshot(t, w.relay)

	archive := filepath.Join(t.TempDir(), "relay.tar.zst")
	prog := &countingProgress{}
	st, err := BackupFile(ctx, w.relay, archive, BackupOptions{Progress: prog})
	if err != nil {
		t.Fatal(err)
	}
	if st.Objects != len(want) || st.Repository != w.repo.ID() || prog.done != prog.total || prog.total != st.Bytes {
		t.Fatalf("backup stats %+v, progress %+v; want %d objects", st, prog, len(want))
	}
	if _, err := os.Stat(archive + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("the temporary file is left: %v", err)
	}
	if _, err := BackupFile(ctx, w.relay, archive, BackupOptions{}); !errors.Is(err, ErrArchiveExists) {
		t.Fatalf("a second backup to the same file: %v, want ErrArchiveExists", err)
	}

	dst := openRelay(t, testserver.RcloneWebDAV(t).Spec)
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rst, err := Restore(ctx, dst, f, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rst.Objects != st.Objects || rst.Bytes != st.Bytes {
		t.Fatalf("restored %+v, backed up %+v", rst, st)
	}
	sameObjects(t, snapshot(t, dst), want)
	if _, err := protocol.Open(ctx, dst, true, w.creds); err != nil {
		t.Fatalf("the restored repository does not open: %v", err)
	}
}

// TestRestoreRefuses: a relay with objects needs --force; a relay of
// another repository is refused even with it; with it, the relay ends up
// exactly as backed up.
func TestRestoreRefuses(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, t.TempDir())
	var buf bytes.Buffer
	if _, err := Backup(ctx, w.relay, &buf, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, w.relay)
	archive := buf.Bytes()

	other := newWorld(t, t.TempDir())
	for _, force := range []bool{false, true} {
		if _, err := Restore(ctx, other.relay, bytes.NewReader(archive), RestoreOptions{Force: force}); !errors.Is(err, ErrForeignRepository) {
			t.Fatalf("restore over another repository (force %v): %v", force, err)
		}
	}

	// The same repository, moved on since the backup: refused, then forced.
	extra := "clients/" + strings.Repeat("d", 26) + "/log/0000000000000009"
	if _, err := w.relay.Put(ctx, extra, strings.NewReader("newer"), 5); err != nil {
		t.Fatal(err)
	}
	if _, err := w.relay.Put(ctx, "heads/"+strings.Repeat("a", 26)+".0000000000000001", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, w.relay, bytes.NewReader(archive), RestoreOptions{}); !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("restore over a non-empty relay: %v", err)
	}
	st, err := Restore(ctx, w.relay, bytes.NewReader(archive), RestoreOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Deleted != 1 {
		t.Fatalf("deleted %d objects, want 1", st.Deleted)
	}
	sameObjects(t, snapshot(t, w.relay), want)

	// A folder of foreign files is not empty either.
	junk := openRelay(t, t.TempDir())
	if _, err := junk.Put(ctx, "notes.txt", strings.NewReader("hi"), 2); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, junk, bytes.NewReader(archive), RestoreOptions{}); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore into a folder with other files: %v", err)
	}
}

// TestRestoreDamagedArchive: truncated or corrupted archives fail with
// ErrBadArchive and leave no escale.json, so no client takes the half-done
// relay as valid.
func TestRestoreDamagedArchive(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, t.TempDir())
	var buf bytes.Buffer
	if _, err := Backup(ctx, w.relay, &buf, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	archive := buf.Bytes()
	flipped := bytes.Clone(archive)
	flipped[len(flipped)/2] ^= 0x40
	cases := map[string][]byte{
		"empty":         nil,
		"not zstd":      []byte("this is not an archive at all"),
		"first bytes":   archive[:40],
		"half":          archive[:len(archive)/2],
		"all but 1 KiB": archive[:len(archive)-1024],
		"all but 10":    archive[:len(archive)-10],
		"flipped bit":   flipped,
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			dst := openRelay(t, t.TempDir())
			_, err := Restore(ctx, dst, bytes.NewReader(data), RestoreOptions{})
			if !errors.Is(err, ErrBadArchive) {
				t.Fatalf("restore: %v, want ErrBadArchive", err)
			}
			if _, err := dst.Stat(ctx, protocol.MarkerName); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("escale.json after a failed restore: %v", err)
			}
		})
	}
	// Well-formed tar.zst files that are not whole backups: the trailer
	// gone (cut at an entry boundary), an object gone, escale.json not first.
	rewrites := map[string]func(name string) bool{
		"no trailer":      func(name string) bool { return name != trailerName },
		"object missing":  func(name string) bool { return !strings.HasSuffix(name, "/acks") },
		"no escale.json":  func(name string) bool { return name != protocol.MarkerName },
		"not a backup":    func(name string) bool { return name != headerName },
		"nothing but hdr": func(name string) bool { return name == headerName },
	}
	for name, keep := range rewrites {
		t.Run(name, func(t *testing.T) {
			dst := openRelay(t, t.TempDir())
			_, err := Restore(ctx, dst, bytes.NewReader(rewriteArchive(t, archive, keep)), RestoreOptions{})
			if !errors.Is(err, ErrBadArchive) {
				t.Fatalf("restore: %v, want ErrBadArchive", err)
			}
			if _, err := dst.Stat(ctx, protocol.MarkerName); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("escale.json after a failed restore: %v", err)
			}
		})
	}
}

// rewriteArchive re-packs a backup archive keeping the entries keep accepts.
func rewriteArchive(t *testing.T, archive []byte, keep func(name string) bool) []byte {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !keep(h.Name) {
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestMigrate copies a local relay to WebDAV under the admin lock: identical
// objects, the repository opens there, the source is intact, the lock is
// held while it copies and released after; a non-empty destination and a
// lock held by someone else are refused.
func TestMigrate(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, t.TempDir())
	want := snapshot(t, w.relay)
	dst := openRelay(t, testserver.RcloneWebDAV(t).Spec)
	lockOpts := protocol.LockOptions{Owner: "migrator", Timeout: time.Minute, Settle: 10 * time.Millisecond}

	// Held by another client: refused, nothing copied.
	other, err := protocol.Open(ctx, openRelay(t, w.relay.String()), true, w.creds)
	if err != nil {
		t.Fatal(err)
	}
	held, err := other.AcquireLock(ctx, AdminLock, protocol.LockOptions{Owner: "desk", Settle: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Migrate(ctx, w.repo, dst, MigrateOptions{Lock: lockOpts}); !errors.Is(err, protocol.ErrLocked) || !strings.Contains(err.Error(), "desk") {
		t.Fatalf("migrate while another client holds the lock: %v", err)
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}

	var lockErr error
	prog := &countingProgress{onAdd: func() {
		_, lockErr = other.AcquireLock(ctx, AdminLock, protocol.LockOptions{Owner: "desk", Settle: 10 * time.Millisecond})
	}}
	st, err := Migrate(ctx, w.repo, dst, MigrateOptions{Lock: lockOpts, Progress: prog})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(lockErr, protocol.ErrLocked) {
		t.Fatalf("the admin lock was not held during the copy: %v", lockErr)
	}
	if st.Objects != len(want) || st.Passes != 1 {
		t.Fatalf("stats %+v, want %d objects in one pass", st, len(want))
	}
	sameObjects(t, snapshot(t, dst), want)
	sameObjects(t, snapshot(t, w.relay), want)
	if _, err := protocol.Open(ctx, dst, true, w.creds); err != nil {
		t.Fatalf("the migrated repository does not open: %v", err)
	}
	after, err := other.AcquireLock(ctx, AdminLock, protocol.LockOptions{Owner: "desk", Settle: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("the lock was not released after migrate: %v", err)
	}
	after.Release(ctx)

	if _, err := Migrate(ctx, w.repo, dst, MigrateOptions{Lock: lockOpts}); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("migrate into a non-empty relay: %v", err)
	}
}
