//go:build unix

package integration

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// localWorld is a world whose relay is a folder on this disk, so the test
// can wipe it or put an old copy back behind the clients' backs (a server
// in front of it would cache listings).
func localWorld(t *testing.T, n int, extra string) (*world, uint64) {
	t.Helper()
	seed := seedFor(t)
	relay := filepath.Join(t.TempDir(), "relay")
	if err := os.MkdirAll(relay, 0o755); err != nil {
		t.Fatal(err)
	}
	return newWorld(t, relay, relay, n, seed, extra), seed
}

// folderVersions returns the hash of every file in every client's folder.
func (w *world) folderVersions() map[string]string {
	out := map[string]string{}
	for _, c := range w.clients {
		for p, h := range tree(c.folder) {
			out[h] = c.name + ":" + p
		}
	}
	return out
}

// stillHeld counts the versions of before that are no longer in any folder
// or trash, and reports each as an error.
func (w *world) stillHeld(before map[string]string) (checked, lost int) {
	w.t.Helper()
	have := w.folderVersions()
	for _, c := range w.clients {
		for _, h := range tree(c.trashDir()) {
			have[h] = "trash"
		}
	}
	for h, where := range before {
		checked++
		if _, ok := have[h]; !ok {
			lost++
			w.t.Errorf("version of %s (sha256 %s…) is gone from every folder and trash", where, h[:12])
		}
	}
	return checked, lost
}

// waitStatus waits up to limit for c's status to satisfy cond.
func waitStatus(c *client, limit time.Duration, cond func(st map[string]any) bool) (map[string]any, bool) {
	deadline := time.Now().Add(limit)
	for {
		st := c.status()
		if cond(st) {
			return st, true
		}
		if time.Now().After(deadline) {
			return st, false
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// statusError is the status's error, leaving out the one a client that has
// not finished a round yet shows.
func statusError(st map[string]any) string {
	s, _ := st["error"].(string)
	if strings.HasPrefix(s, "never synced") {
		return ""
	}
	return s
}

func statusWaiting(st map[string]any) string {
	ws, _ := st["waiting"].([]any)
	var out []string
	for _, w := range ws {
		out = append(out, fmt.Sprint(w))
	}
	return strings.Join(out, "; ")
}

// editFor lets the driver edit for d, then waits for the daemons to settle.
func (w *world) editFor(d time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return w.drive(ctx, 1<<30, false)
}

// The relay folder is wiped, then rolled back to an older copy, while the
// daemons run. Neither may delete or replace anything locally: PROTOCOL.md
// §3 and §5.3 want the round to stop with an error.
func TestRelayWipedAndRolledBack(t *testing.T) {
	for _, accident := range []string{"wiped", "rolled back"} {
		t.Run(strings.ReplaceAll(accident, " ", "-"), func(t *testing.T) {
			w, seed := localWorld(t, 3, "")
			began := time.Now()
			r := row{Scenario: "relay: folder " + accident + " mid-run", Server: "local folder", Runs: 1, Faults: 1, Seed: seed}
			t.Cleanup(func() { r.Seconds = time.Since(began).Seconds(); report(t, r) })
			w.create()
			w.startAll()
			made := w.editFor(3 * time.Second)
			backup := filepath.Join(t.TempDir(), "backup")
			if accident == "rolled back" {
				// Daemons keep writing and deleting: a file gone mid-copy is
				// simply not in the copy, as with any live backup.
				if err := copyLive(w.relayDir, backup); err != nil {
					t.Fatalf("back the relay up: %v", err)
				}
				made += w.editFor(3 * time.Second)
			}
			// Let the daemons settle so every client has the same tree.
			w.converge(6)
			before := w.folderVersions()
			w.startAll()
			time.Sleep(time.Second)
			if err := os.RemoveAll(w.relayDir); err != nil {
				t.Fatal(err)
			}
			if accident == "rolled back" {
				if err := os.Rename(backup, w.relayDir); err != nil {
					t.Fatal(err)
				}
			} else if err := os.MkdirAll(w.relayDir, 0o755); err != nil {
				t.Fatal(err)
			}
			// One more edit, so there is something to push on the damaged relay.
			w.clients[0].step(false)
			var seen []string
			for _, c := range w.clients {
				st, ok := waitStatus(c, 8*time.Second, func(st map[string]any) bool { return statusError(st) != "" || statusWaiting(st) != "" })
				if ok {
					seen = append(seen, fmt.Sprintf("%s: %s%s", c.name, statusError(st), statusWaiting(st)))
				}
			}
			// A daemon that starts now opens the repository afresh.
			restarted := w.clients[1]
			restarted.kill9()
			restarted.start()
			atStart, _ := waitStatus(restarted, 20*time.Second, func(st map[string]any) bool { return statusError(st) != "" })
			if statusError(atStart) == "" {
				t.Errorf("a daemon started on the %s relay reports no error", accident)
			}
			for _, c := range w.clients {
				c.stop()
			}
			for _, s := range seen {
				t.Logf("status after the relay was %s: %s", accident, s)
			}
			r.Checked, r.Lost = w.stillHeld(before)
			if len(seen) < len(w.clients) {
				// Known engine gap (see TestRelayWipedWhileRunning): a running
				// daemon checks the marker only when it opens the repository.
				t.Logf("%d of %d running clients reported nothing; relay now holds %d objects", len(w.clients)-len(seen), len(w.clients), len(w.relayFiles()))
			}
			r.Notes = fmt.Sprintf("%d edits before; %d/%d running daemons said so in status within 8 s; a restarted one said: %s", made, len(seen), len(w.clients), firstLine(statusError(atStart)))
		})
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// A quota far smaller than the data waiting: the pusher waits for space
// (status says so), pullers consume, and everything arrives.
func TestRelayQuota(t *testing.T) {
	w, seed := localWorld(t, 3, `quota = "1MB"`)
	began := time.Now()
	r := row{Scenario: "relay: quota reached with more data waiting", Server: "local folder", Runs: 1, Faults: 1, Seed: seed}
	t.Cleanup(func() { r.Seconds = time.Since(began).Seconds(); report(t, r) })
	w.create()
	c0 := w.clients[0]
	// 4 MB of incompressible-enough files waits on c0 before anyone runs.
	total := 0
	for i := range 12 {
		data := c0.content(fmt.Sprintf("bulk/%d.bin", i), false)
		for len(data) < 300_000 {
			data = append(data, c0.content("pad", false)...)
		}
		if err := c0.save(fmt.Sprintf("bulk/%d.bin", i), data); err != nil {
			t.Fatal(err)
		}
		total += len(data)
	}
	out, code := c0.escale(2*time.Minute, "sync", "--once")
	t.Logf("first push with %d bytes waiting under a 1 MB quota: exit %d: %s", total, code, strings.TrimSpace(out))
	if code != 2 || !strings.Contains(out, "space") {
		t.Errorf("a push over the quota should end with exit code 2 and say it waits for relay space; got %d", code)
	}
	w.startAll()
	waitFor(t, "the bulk files on every client", func() bool {
		for _, c := range w.clients[1:] {
			if len(tree(filepath.Join(c.folder, "bulk"))) != 12 {
				return false
			}
		}
		return true
	})
	passes, _ := w.converge(6)
	v := w.check(w.clients)
	r.Checked, r.Lost = v.Checked, v.Lost
	r.Notes = fmt.Sprintf("%d bytes through a 1 MB quota; first round exit %d; rest after %d passes", total, code, passes)
}

// A second escale process on the same repository (same state): `sync
// --once` waits (exit 2) and a second daemon retries without touching
// anything, while the first keeps syncing.
func TestSecondProcessSameRepository(t *testing.T) {
	w, seed := localWorld(t, 2, "")
	began := time.Now()
	r := row{Scenario: "relay: second process on the same repository", Server: "local folder", Runs: 1, Faults: 2, Seed: seed}
	t.Cleanup(func() { r.Seconds = time.Since(began).Seconds(); report(t, r) })
	w.create()
	w.startAll()
	c0 := w.clients[0]
	time.Sleep(time.Second)
	out, code := c0.escale(time.Minute, "sync", "--once")
	if code != 2 || !strings.Contains(out, "in use") {
		t.Errorf("sync --once beside the daemon: want exit 2 saying the repository is in use, got %d: %s", code, out)
	}
	// A second daemon on the same configuration, for a while.
	twin := &client{w: w, name: "c0-twin", conf: c0.conf, logPath: filepath.Join(w.root, "twin.log"), folder: c0.folder}
	twin.start()
	made := w.editFor(4 * time.Second)
	twin.stop()
	if b, _ := os.ReadFile(twin.logPath); !strings.Contains(string(b), "in use") {
		t.Errorf("the second daemon did not say the repository is in use:\n%s", tail(twin.logPath, 10))
	}
	passes, _ := w.converge(6)
	v := w.check(w.clients)
	r.Checked, r.Lost = v.Checked, v.Lost
	r.Notes = fmt.Sprintf("sync --once exit %d; twin daemon ran 4 s; %d edits; rest after %d passes", code, made, passes)
}

// Known engine gap, kept as a reproduction: a daemon already running when
// its relay folder is wiped goes on pushing into the empty folder (heads,
// logs, data, but no escale.json and no keys) and reports nothing, because
// engine.openRepo (pkg/engine/engine.go) checks the marker only when the
// repository is opened. Other clients then see a relay with objects and no
// marker; only restarted ones report it.
func TestRelayWipedWhileRunning(t *testing.T) {
	w, _ := localWorld(t, 2, "")
	w.create()
	w.startAll()
	w.editFor(2 * time.Second)
	os.RemoveAll(w.relayDir)
	os.MkdirAll(w.relayDir, 0o755)
	w.clients[0].step(false)
	if st, ok := waitStatus(w.clients[0], 15*time.Second, func(st map[string]any) bool { return statusError(st) != "" }); !ok {
		t.Errorf("a running daemon does not report the wiped relay: %v; relay holds %v", st, w.relayFiles())
	}
}

// copyLive copies a tree that others are changing, skipping what vanishes.
func copyLive(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, data, 0o644); err != nil {
			return err
		}
		if fi, err := d.Info(); err == nil {
			return os.Chtimes(target, fi.ModTime(), fi.ModTime())
		}
		return nil
	})
}
