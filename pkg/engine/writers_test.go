package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestManySmallFilesWrittenInTheBackground: the small files of a manifest
// are written by several workers; every one lands with its content, mode
// and mtime, every one is recorded (the next round of the puller finds
// nothing to push), and replaced files go to the trash as before.
func TestManySmallFilesWrittenInTheBackground(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	b.ok()
	mt := fixedTime()
	for i := range 400 {
		a.write(fmt.Sprintf("d%02d/f%03d.txt", i%17, i), fmt.Sprintf("file %d\n", i), mt.Add(time.Duration(i)*time.Second))
	}
	if err := os.Chmod(filepath.Join(a.dir, "d00/f000.txt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if r := a.ok(); r.Pushed != 400 {
		t.Fatalf("alpha pushed %d files, want 400 (%+v)", r.Pushed, r)
	}
	if r := b.ok(); r.Pulled != 400 {
		t.Fatalf("beta pulled %d files, want 400 (%+v)", r.Pulled, r)
	}
	sameTrees(t, a, b)
	fi, err := os.Stat(filepath.Join(b.dir, "d05/f005.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(mt.Add(5 * time.Second)) {
		t.Fatalf("mtime of d05/f005.txt on beta: %v, want %v", fi.ModTime(), mt.Add(5*time.Second))
	}
	if fi, err := os.Stat(filepath.Join(b.dir, "d00/f000.txt")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("exec bit of d00/f000.txt on beta lost: %v %v", fi.Mode(), err)
	}
	if r := b.ok(); r.Busy() {
		t.Fatalf("beta's next round was busy (%+v): a file written in the background was not recorded", r)
	}
	// Replacements: every old version goes to the trash.
	for i := range 50 {
		a.write(fmt.Sprintf("d%02d/f%03d.txt", i%17, i), fmt.Sprintf("file %d, second version\n", i), mt.Add(time.Hour))
	}
	a.ok()
	if r := b.ok(); r.Pulled != 50 {
		t.Fatalf("beta pulled %d files, want 50", r.Pulled)
	}
	sameTrees(t, a, b)
	trashed, err := b.e.folder.Trash().List()
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, te := range trashed {
		kept[te.Name] = true
	}
	for i := range 50 {
		if name := fmt.Sprintf("d%02d/f%03d.txt", i%17, i); !kept[name] {
			t.Fatalf("the replaced version of %s is not in beta's trash (%d entries)", name, len(trashed))
		}
	}
}
