//go:build unix

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size on dir (root only), unmounted when the
// test ends.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

func sh(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// The synced folder's disk fills up while a pull writes there: the client
// says so, leaves no temp or torn file, loses nothing, and finishes once
// there is room again.
func TestDiskFull(t *testing.T) {
	w, seed := localWorld(t, 2, "")
	began := time.Now()
	r := row{Scenario: "local: disk full in the synced folder (2 MB tmpfs)", Server: "local folder", Runs: 1, Faults: 1, Seed: seed}
	t.Cleanup(func() { r.Seconds = time.Since(began).Seconds(); report(t, r) })
	c0, c1 := w.clients[0], w.clients[1]
	mountTmpfs(t, c1.folder, "2m")
	w.create()
	total := 0
	for i := range 10 {
		data := c0.content("big", false)
		for len(data) < 400_000 {
			data = append(data, c0.content("pad", false)...)
		}
		c0.save(fmt.Sprintf("big/%d.bin", i), data)
		total += len(data)
	}
	w.startAll()
	st, ok := waitStatus(c1, time.Minute, func(st map[string]any) bool {
		ps, _ := st["problems"].([]any)
		return statusError(st) != "" || len(ps) > 0 || statusWaiting(st) != ""
	})
	if !ok {
		t.Errorf("c1's status never mentioned the full disk: %v", st)
	}
	said := firstLine(statusError(st) + fmt.Sprint(st["problems"]) + statusWaiting(st))
	t.Logf("c1's status with a full disk: %s", said)
	time.Sleep(2 * time.Second)
	for p := range tree(c1.folder) {
		if strings.HasPrefix(pathBase(p), tempPrefix) {
			t.Logf("temp file in the full folder while the daemon runs: %s", p)
		}
	}
	sh(t, "mount", "-o", "remount,size=64m", c1.folder)
	passes, _ := w.converge(6)
	v := w.check(w.clients)
	r.Checked, r.Lost = v.Checked, v.Lost
	r.Notes = fmt.Sprintf("%d bytes into 2 MB; status said %q; grown to 64 MB, rest after %d passes", total, said, passes)
}

// The synced folder is unmounted on one client and emptied by hand on
// another: neither may propagate as a mass deletion.
func TestFolderUnmountedOrEmptied(t *testing.T) {
	w, seed := localWorld(t, 3, "")
	began := time.Now()
	r := row{Scenario: "local: folder unmounted / emptied", Server: "local folder", Runs: 1, Faults: 2, Seed: seed}
	t.Cleanup(func() { r.Seconds = time.Since(began).Seconds(); report(t, r) })
	c0, c1, c2 := w.clients[0], w.clients[1], w.clients[2]
	mountTmpfs(t, c1.folder, "16m")
	w.create()
	for i := range 20 {
		c0.save(fmt.Sprintf("keep/%02d.txt", i), c0.content("keep", false))
	}
	w.converge(4)
	before := tree(c0.folder)
	versions := w.folderVersions()
	// c1's disk goes away (the daemon restarts on the bare mount point);
	// c2's user empties the folder while its daemon runs.
	sh(t, "umount", c1.folder)
	w.startAll()
	entries, _ := os.ReadDir(c2.folder)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(c2.folder, e.Name()))
	}
	var said []string
	for _, c := range []*client{c1, c2} {
		st, ok := waitStatus(c, 30*time.Second, func(st map[string]any) bool { return statusError(st) != "" || statusWaiting(st) != "" })
		if !ok {
			t.Errorf("%s: status never said its folder lost every file: %v", c.name, st)
		}
		said = append(said, c.name+": "+firstLine(statusError(st)+statusWaiting(st)))
	}
	time.Sleep(3 * time.Second) // rounds that would propagate the deletions
	for _, c := range w.clients {
		c.stop()
	}
	if d := diffTrees(before, tree(c0.folder)); d != "" {
		t.Errorf("an unmounted or emptied folder propagated deletions to c0:\n%s", d)
	}
	r.Checked, r.Lost = w.stillHeld(versions)
	r.Notes = strings.Join(said, "; ")
}

// Files escale cannot read, and a folder it cannot write, on a client run
// as an unprivileged user (root reads everything): the round reports them
// and syncs the rest; once the permissions are fixed everything arrives.
func TestPermissions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as nobody")
	}
	const nobody = 65534
	w, seed := localWorld(t, 2, "")
	began := time.Now()
	r := row{Scenario: "local: unreadable file, unwritable folder (client run as nobody)", Server: "local folder", Runs: 1, Faults: 2, Seed: seed}
	t.Cleanup(func() { r.Seconds = time.Since(began).Seconds(); report(t, r) })
	c0, c1 := w.clients[0], w.clients[1]
	// Both run as nobody, so both can write the relay; root's driver makes
	// the mischief.
	c0.uid, c1.uid = nobody, nobody
	// nobody must reach the binary, the passphrase, its client folder and the relay.
	for p := filepath.Dir(escaleBin); p != "/" && p != "/tmp"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	for p := w.root; p != "/" && p != "/tmp"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	for p := w.relayDir; p != "/" && p != "/tmp"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	os.Chmod(filepath.Join(w.root, "pass"), 0o644)
	sh(t, "chown", "-R", fmt.Sprint(nobody), c0.dir, c1.dir, w.relayDir)
	w.create()
	if out, code := c1.escale(time.Minute, "sync", "--once"); code != 0 {
		t.Fatalf("c1 as nobody: exit %d\n%s", code, out)
	}
	// c1 holds a file it cannot read; c0 sends a file into a folder c1 cannot write.
	c1.save("secret.txt", c1.content("secret.txt", false))
	os.Chown(filepath.Join(c1.folder, "secret.txt"), 0, 0)
	os.Chmod(filepath.Join(c1.folder, "secret.txt"), 0o600)
	os.MkdirAll(filepath.Join(c1.folder, "locked"), 0o755) // root's
	c0.save("locked/in.txt", c0.content("locked/in.txt", false))
	c0.save("free.txt", c0.content("free.txt", false))
	c1.save("mine.txt", c1.content("mine.txt", false))
	sh(t, "chown", fmt.Sprint(nobody), filepath.Join(c1.folder, "mine.txt"))
	sh(t, "chown", "-R", fmt.Sprint(nobody), c0.folder)
	var outs []string
	for range 2 {
		for _, c := range w.clients {
			out, code := c.escale(time.Minute, "sync", "--once")
			outs = append(outs, fmt.Sprintf("%s exit %d: %s", c.name, code, strings.TrimSpace(out)))
		}
	}
	t.Logf("rounds with the permission problems:\n%s", strings.Join(outs, "\n"))
	if _, err := os.Stat(filepath.Join(c1.folder, "free.txt")); err != nil {
		t.Errorf("free.txt did not reach c1 beside the permission problems: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c0.folder, "mine.txt")); err != nil {
		t.Errorf("mine.txt did not reach c0 beside the permission problems: %v", err)
	}
	st := c1.status()
	said := firstLine(fmt.Sprint(st["problems"]) + statusError(st))
	if !strings.Contains(said, "secret.txt") && !strings.Contains(said, "locked") {
		t.Errorf("c1's status does not name the files it cannot read or write: %s", said)
	}
	sh(t, "chown", "-R", fmt.Sprint(nobody), c1.folder)
	passes, _ := w.converge(6)
	v := w.check(w.clients)
	r.Checked, r.Lost = v.Checked, v.Lost
	r.Notes = fmt.Sprintf("status said %q; permissions fixed, rest after %d passes", said, passes)
}

// A big file rewritten in place, again and again, while the daemons run:
// whatever reaches the other client is one of the complete versions, never
// a mix of two.
func TestFileChangingWhileRead(t *testing.T) {
	w, seed := localWorld(t, 2, "")
	began := time.Now()
	r := row{Scenario: "local: file rewritten in place while being read", Server: "local folder", Runs: 1, Seed: seed}
	t.Cleanup(func() { r.Seconds = time.Since(began).Seconds(); report(t, r) })
	c0, c1 := w.clients[0], w.clients[1]
	// escale's default settle time: a file is pushed once it has been
	// still for a second, never between two writes of a rewrite.
	w.settle = "1s"
	for _, c := range w.clients {
		c.writeConfig()
	}
	w.create()
	w.startAll()
	path := filepath.Join(c0.folder, "growing.bin")
	var mu sync.Mutex
	complete := map[string]bool{}
	seen := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	go func() { // the reader on the other side
		for ctx.Err() == nil {
			if h, err := hashFile(filepath.Join(c1.folder, "growing.bin")); err == nil {
				mu.Lock()
				seen[h] = true
				mu.Unlock()
			}
			time.Sleep(30 * time.Millisecond)
		}
	}()
	var last string
	for ctx.Err() == nil {
		data := c0.content("growing.bin", false)
		for len(data) < 1_500_000 {
			data = append(data, c0.content("pad", false)...)
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); off += 64 << 10 {
			f.WriteAt(data[off:min(off+64<<10, len(data))], int64(off))
			time.Sleep(2 * time.Millisecond)
		}
		f.Truncate(int64(len(data)))
		f.Close()
		h := hashBytes(data)
		mu.Lock()
		complete[h] = true
		mu.Unlock()
		if last != "" {
			w.led.supersede(c0.name, last)
		}
		w.led.add(&version{client: c0.name, path: "growing.bin", hash: h})
		last = h
		time.Sleep(time.Duration(c0.rng.IntN(300)) * time.Millisecond)
		r.Faults++
	}
	passes, _ := w.converge(6)
	mu.Lock()
	torn := 0
	for h := range seen {
		if !complete[h] {
			torn++
			t.Errorf("c1 held a growing.bin (sha256 %s…) that was never a complete version", h[:12])
		}
	}
	r.Checked = len(seen)
	mu.Unlock()
	v := w.check(w.clients)
	r.Lost = v.Lost + torn
	r.Checked += v.Checked
	r.Notes = fmt.Sprintf("%d in-place rewrites of 1.5 MB; c1 showed %d distinct copies, %d torn; rest after %d passes", r.Faults, len(seen), torn, passes)
}

// Names that trouble a file system: a file on one client where another has
// a folder of the same name, names Windows rejects, a name escale's path
// rules refuse (a control character). None may block the rest of the sync
// or lose a version.
func TestAwkwardNames(t *testing.T) {
	w, seed := localWorld(t, 2, "")
	began := time.Now()
	r := row{Scenario: "local: file/folder name clash, names other systems reject", Server: "local folder", Runs: 1, Seed: seed}
	t.Cleanup(func() { r.Seconds = time.Since(began).Seconds(); report(t, r) })
	c0, c1 := w.clients[0], w.clients[1]
	w.create()
	c0.save("clash", c0.content("clash", false))
	c1.save("clash/inner.txt", c1.content("clash/inner.txt", false))
	c0.save("what?.txt", c0.content("what?.txt", false))
	c0.save("a:b.txt", c0.content("a:b.txt", false))
	c0.save("trailing. ", c0.content("trailing. ", false))
	c0.save(strings.Repeat("n", 250)+".txt", c0.content("long", false))
	bad := "bad\x01name.txt"
	c0.save(bad, c0.content(bad, false))
	w.led.supersede(c0.name, mustHash(t, filepath.Join(c0.folder, bad))) // may stay local only
	c0.save("after.txt", c0.content("after.txt", false))
	var outs []string
	for range 3 {
		for _, c := range w.clients {
			out, code := c.escale(time.Minute, "sync", "--once")
			outs = append(outs, fmt.Sprintf("%s exit %d: %s", c.name, code, strings.TrimSpace(out)))
		}
	}
	t.Logf("rounds:\n%s", strings.Join(outs, "\n"))
	for _, name := range []string{"after.txt", "what?.txt", "a:b.txt"} {
		if _, err := os.Stat(filepath.Join(c1.folder, name)); err != nil {
			t.Errorf("%s did not reach c1 (blocked by an awkward name?): %v", name, err)
		}
	}
	_, badErr := os.Stat(filepath.Join(c1.folder, bad))
	passes, _ := w.converge(6)
	// The refused name stays on c0 only, by design: compare the rest.
	v := w.check(nil)
	r.Checked, r.Lost = v.Checked, v.Lost
	a, b := tree(c0.folder), tree(c1.folder)
	delete(a, bad)
	if d := diffTrees(a, b); d != "" {
		t.Errorf("c0 and c1 differ at rest (besides the refused name):\n%s", d)
	}
	r.Notes = fmt.Sprintf("control-character name reached c1: %v; rest after %d passes", badErr == nil, passes)
}

func mustHash(t *testing.T, p string) string {
	t.Helper()
	h, err := hashFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
