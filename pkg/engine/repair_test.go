package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/storage"
)

// wipe empties the world's relay folder, as an accident or a hostile
// operator would.
func (w *world) wipe() {
	w.t.Helper()
	if err := os.RemoveAll(w.relay); err != nil {
		w.t.Fatal(err)
	}
	if err := os.MkdirAll(w.relay, 0o755); err != nil {
		w.t.Fatal(err)
	}
}

// restart closes c's engine and opens it again with tweaks.
func (w *world) restart(c *client, tweak ...func(*Options)) *client {
	w.t.Helper()
	if err := c.e.Close(); err != nil {
		w.t.Fatal(err)
	}
	return w.client(c.name, tweak...)
}

// TestRepairWithKeyExport: a wiped relay is rebuilt by one client from a
// key export (same repository, same keys); the other carries on by itself,
// nothing local is deleted, and updates flow both ways again.
func TestRepairWithKeyExport(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	a.write("kept.txt", "synced before the wipe", fixedTime())
	a.round()
	b.round()
	keys := a.e.repo.Keyrings()
	w.wipe()
	if _, err := a.e.Round(context.Background()); err == nil || !strings.Contains(err.Error(), "escale repair") {
		t.Fatalf("a wiped relay must stop the round and name the repair: %v", err)
	}
	a = w.restart(a, func(o *Options) { o.Repair = &Repair{Keyrings: keys} })
	a.write("after.txt", "written after the wipe", fixedTime().Add(time.Minute))
	a.round()
	b.round() // heals its own records, then pulls
	a.round()
	if got, _ := b.read("after.txt"); got != "written after the wipe" {
		t.Fatalf("beta did not get alpha's file after the repair: %q", got)
	}
	b.write("kept.txt", "edited by beta after the repair", fixedTime().Add(2*time.Minute))
	b.round()
	a.round()
	if got, _ := a.read("kept.txt"); got != "edited by beta after the repair" {
		t.Fatalf("alpha did not get beta's edit after the repair: %q", got)
	}
}

// TestRepairAsNewRepository: without a key export, one client starts a new
// repository; the other is refused until it joins with a repair too; files
// changed on either side while the relay was gone reach the other.
func TestRepairAsNewRepository(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	a.write("both.txt", "synced before the wipe", fixedTime())
	a.write("lagging.txt", "one", fixedTime())
	a.round()
	b.round()
	a.write("lagging.txt", "two: beta never got it", fixedTime().Add(time.Minute))
	a.round()
	w.wipe() // before beta pulled "two"
	b.write("beta-only.txt", "made while the relay was gone", fixedTime().Add(2*time.Minute))

	opts := a.e.opts
	if err := a.e.Close(); err != nil {
		t.Fatal(err)
	}
	opts.Repair = &Repair{}
	relay, err := storage.Open(context.Background(), w.relay)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), relay, opts); err == nil || !strings.Contains(err.Error(), "escale repair --keys") {
		t.Fatalf("a repair with neither keys nor --new must say what to give: %v", err)
	}
	a = w.client("alpha", func(o *Options) { o.Repair = &Repair{New: true} })
	a.round()
	if _, err := b.e.Round(context.Background()); err == nil || !strings.Contains(err.Error(), "repair --new") {
		t.Fatalf("beta must be told to join the new repository: %v", err)
	}
	b = w.restart(b, func(o *Options) { o.Repair = &Repair{New: true} })
	for range 3 {
		b.round()
		a.round()
	}
	for _, c := range []*client{a, b} {
		for name, want := range map[string]string{"both.txt": "synced before the wipe", "lagging.txt": "two: beta never got it", "beta-only.txt": "made while the relay was gone"} {
			if got, _ := c.read(name); got != want {
				t.Errorf("%s has %s = %q, want %q", c.name, name, got, want)
			}
		}
	}
}

// TestLostStateRebuilt: a client whose state folder is lost rebuilds it
// from its index on the relay and a scan: a file it no longer has comes
// back instead of being deleted everywhere, its edit made meanwhile goes
// out as an edit (no conflict), and its numbering carries on.
func TestLostStateRebuilt(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	for _, n := range []string{"one.txt", "two.txt", "three.txt"} {
		a.write(n, "first "+n, fixedTime())
	}
	a.round()
	a.write("two.txt", "second two.txt", fixedTime().Add(time.Minute))
	a.round() // an update after the index's first generation
	b.round()
	a.round()
	if err := a.e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(w.root, "state-alpha")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(a.dir, "one.txt")); err != nil {
		t.Fatal(err)
	}
	a = w.client("alpha")
	a.write("three.txt", "edited while the state was gone", fixedTime().Add(2*time.Minute))
	for range 3 {
		a.round()
		b.round()
	}
	want := map[string]string{"one.txt": "first one.txt", "two.txt": "second two.txt", "three.txt": "edited while the state was gone"}
	for _, c := range []*client{a, b} {
		for n, content := range want {
			if got, _ := c.read(n); got != content {
				t.Errorf("%s has %s = %q, want %q", c.name, n, got, content)
			}
		}
		if files := tree(t, c.dir); len(files) != len(want) {
			t.Errorf("%s holds %d files (conflict copies?): %v", c.name, len(files), files)
		}
	}
}

// TestRepairAfterRollback: the relay is put back to an older copy; clients
// stop and say so; `escale repair --new` carries on with the relay as it
// is, publishing again what it lost, and nothing local is deleted.
func TestRepairAfterRollback(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	a.write("old.txt", "before the copy", fixedTime())
	a.round()
	b.round()
	a.round()
	copyDir := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(copyDir, os.DirFS(w.relay)); err != nil {
		t.Fatal(err)
	}
	a.write("new.txt", "after the copy", fixedTime().Add(time.Minute))
	a.round()
	b.round()
	a.round()
	w.wipe()
	if err := os.CopyFS(w.relay, os.DirFS(copyDir)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.e.Round(context.Background()); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("a rolled back relay must stop alpha: %v", err)
	}
	a = w.restart(a, func(o *Options) { o.Repair = &Repair{New: true} })
	a.write("later.txt", "after the repair", fixedTime().Add(2*time.Minute))
	a.round()
	for range 2 {
		b.round()
		a.round()
	}
	for n, want := range map[string]string{"old.txt": "before the copy", "new.txt": "after the copy", "later.txt": "after the repair"} {
		for _, c := range []*client{a, b} {
			if got, _ := c.read(n); got != want {
				t.Errorf("%s has %s = %q, want %q", c.name, n, got, want)
			}
		}
	}
}
