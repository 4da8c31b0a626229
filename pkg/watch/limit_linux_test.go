package watch

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// setSysctl lowers a /proc/sys/fs/inotify knob for the test and returns a
// function that restores it (also run at cleanup). The knobs are
// system-wide, so tests restore them as soon as they can, and the old value
// is kept in a file too, so that a run killed meanwhile (a -timeout panic
// skips cleanups) is repaired by the next one.
func setSysctl(t *testing.T, name string, v int) (restore func()) {
	t.Helper()
	p := "/proc/sys/fs/inotify/" + name
	saved := filepath.Join(os.TempDir(), "escale-watch-test-"+name)
	if old, err := os.ReadFile(saved); err == nil {
		if err := os.WriteFile(p, old, 0o644); err != nil {
			t.Fatalf("restore %s left lowered by a killed run: %v; write %s into it", p, err, old)
		}
	}
	old, err := os.ReadFile(p)
	if err != nil {
		t.Skipf("cannot read %s: %v", p, err)
	}
	if err := os.WriteFile(saved, old, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strconv.Itoa(v)), 0o644); err != nil {
		os.Remove(saved)
		t.Skipf("cannot lower %s (needs root and a writable /proc/sys): %v", p, err)
	}
	var once sync.Once
	restore = func() {
		once.Do(func() {
			if err := os.WriteFile(p, old, 0o644); err != nil {
				t.Errorf("restore %s to %s: %v", p, strings.TrimSpace(string(old)), err)
				return
			}
			os.Remove(saved)
		})
	}
	t.Cleanup(restore)
	return restore
}

// inotifyWatchesInUse counts the inotify watches held by this user's
// processes, which count against max_user_watches.
func inotifyWatchesInUse(t *testing.T) int {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/fdinfo/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range procs {
		if fi, err := os.Stat(filepath.Dir(filepath.Dir(p))); err != nil ||
			int(fi.Sys().(*syscall.Stat_t).Uid) != os.Getuid() {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue // the process or descriptor is gone
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "inotify wd:") {
				n++
			}
		}
		f.Close()
	}
	return n
}

func TestWatchLimitFallsBackToScans(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("lowering fs.inotify.max_user_watches needs root")
	}
	root := t.TempDir()
	const dirs = 40
	for i := range dirs {
		mkdirs(t, root, fmt.Sprintf("d%02d/e", i))
	}
	var logs logBuffer
	opts := fast
	opts.Logger = logs.logger()

	restore := setSysctl(t, "max_user_watches", inotifyWatchesInUse(t)+10)
	w := start(t, root, opts)
	if !w.Degraded() {
		t.Fatal("Degraded is false although the watch limit was reached")
	}
	waitOverflow(t, w)

	// Still over the limit: a folder moved in cannot be watched either, but
	// its contents are reported, and the warning is not repeated. (Moved in
	// whole, because changes inside an unwatched folder after its walk are
	// exactly what only scans can find.)
	outside := t.TempDir()
	mkdirs(t, outside, "late/sub")
	write(t, outside, "late/sub/f", "x")
	rename(t, filepath.Join(outside, "late"), filepath.Join(root, "late"))
	waitPaths(t, w, "late", "late/sub", "late/sub/f")
	restore()

	const warning = "exceeds the system limit (fs.inotify.max_user_watches); falling back to periodic scans; raise the limit with `sudo sysctl fs.inotify.max_user_watches="
	if got := strings.Count(logs.String(), warning); got != 1 {
		t.Errorf("limit warning logged %d times, want once; log:\n%s", got, logs.String())
	}
	// Every folder is counted, watched or not: the root and 2 per dN.
	if want := fmt.Sprintf("watching %d folders", 1+2*dirs); !strings.Contains(logs.String(), want) {
		t.Errorf("warning lacks %q; log:\n%s", want, logs.String())
	}
	// The root was watched first, so changes there still arrive.
	write(t, root, "top.txt", "x")
	waitPaths(t, w, "top.txt")
	if !w.Degraded() {
		t.Error("Degraded reverted")
	}
}

func TestEventQueueOverflowRewatches(t *testing.T) {
	if testing.Short() {
		t.Skip("paced checks take seconds")
	}
	if os.Getuid() != 0 {
		t.Skip("lowering fs.inotify.max_queued_events needs root")
	}
	root := t.TempDir()
	mkdirs(t, root, "sub")
	var logs logBuffer
	opts := fast
	opts.Logger = logs.logger()

	// The queue size is fixed when the inotify instance is made, so the
	// knob can be restored right after New.
	restore := setSysctl(t, "max_queued_events", 16)
	w := start(t, root, opts)
	restore()
	t.Cleanup(func() { t.Log(logs.String()) })

	// Writers outpace the reader; a 16-event queue overflows quickly.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				_ = os.WriteFile(filepath.Join(root, fmt.Sprintf("g%d-%03d", g, i)), nil, 0o644)
				if i%50 == 0 {
					_ = os.Mkdir(filepath.Join(root, fmt.Sprintf("dir-g%d-%03d", g, i)), 0o755)
				}
			}
		}()
	}
	wg.Wait()
	waitOverflow(t, w)
	if w.Degraded() {
		t.Error("an event-queue overflow must not degrade the watcher: watches are re-added")
	}
	if !strings.Contains(logs.String(), "fs.inotify.max_queued_events") {
		t.Errorf("no overflow warning; log:\n%s", logs.String())
	}

	// The queue stays 16 events long, so from here on one change at a time.
	calm(t, w, root)
	// Watches work after the re-walk: old folders, folders made during the
	// burst (whose events may be among those lost) and new ones alike.
	check := func(rel string) {
		write(t, root, rel, "x")
		waitPaths(t, w, rel)
	}
	check("sub/after")
	for g := range 4 {
		for i := 0; i < 500; i += 50 {
			check(fmt.Sprintf("dir-g%d-%03d/after", g, i))
		}
	}
	mkdirs(t, root, "new/deep")
	waitPaths(t, w, "new/deep")
	check("new/deep/f")
}

// calm writes marker files until one arrives in a batch without Overflow:
// then the burst's tail, its overflows and re-walks included, is over.
func calm(t *testing.T, w *Watcher, root string) {
	t.Helper()
	for i := range 20 {
		name := fmt.Sprintf("calm-%d", i)
		write(t, root, name, "x")
		s := waitPaths(t, w, name)
		if !s.batches[len(s.batches)-1].Overflow {
			return
		}
	}
	t.Fatal("the watcher kept overflowing after the burst ended")
}
