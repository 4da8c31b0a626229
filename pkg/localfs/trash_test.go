package localfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTrashPutListPurge(t *testing.T) {
	clock := time.Date(2026, 11, 25, 14, 30, 5, 0, time.UTC)
	tr, err := NewTrash(filepath.Join(t.TempDir(), "trash"), func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(tr.Dir()); fi.Mode().Perm() != 0o700 {
		t.Errorf("trash mode %v, want 0700 (it holds the user's files)", fi.Mode().Perm())
	}
	put := func(name, content string) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), "src")
		os.WriteFile(p, []byte(content), 0o640)
		os.Chtimes(p, mt1, mt1)
		got, err := tr.Put(p, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Fatalf("Put left the original %s", p)
		}
		return got
	}

	first := put("dir/a.txt", "one")
	if want := filepath.Join(tr.Dir(), "20261125-143005", "dir", "a.txt"); first != want {
		t.Fatalf("trashed to %s, want %s", first, want)
	}
	// Same name in the same second: the next slot, the name kept intact.
	second := put("dir/a.txt", "two")
	if want := filepath.Join(tr.Dir(), "20261125-143005-1", "dir", "a.txt"); second != want {
		t.Fatalf("second version trashed to %s, want %s", second, want)
	}
	// "dir" as a file in a slot where "dir/" is a directory, and the other way round.
	put("dir", "a file named dir")
	put("x", "file x")
	put("x/y", "x is a directory now")

	fi, _ := os.Lstat(first)
	if readFile(t, first) != "one" || readFile(t, second) != "two" || fi.Mode().Perm() != 0o640 || !fi.ModTime().Equal(mt1) {
		t.Fatalf("content, mode or mtime lost: %v %v", fi.Mode(), fi.ModTime())
	}

	clock = clock.Add(48 * time.Hour)
	put("later.txt", "recent")
	os.Mkdir(filepath.Join(tr.Dir(), "not-a-slot"), 0o755)
	os.WriteFile(filepath.Join(tr.Dir(), "not-a-slot", "f"), nil, 0o644)

	list, err := tr.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Name+"@"+e.TrashedAt.Format("0102-1504"))
	}
	want := "dir@1125-1430 dir/a.txt@1125-1430 dir/a.txt@1125-1430 x@1125-1430 x/y@1125-1430 later.txt@1127-1430"
	if strings.Join(names, " ") != want {
		t.Fatalf("List = %v\nwant %v", names, want)
	}

	n, err := tr.Purge(24 * time.Hour)
	if err != nil || n != 5 {
		t.Fatalf("Purge removed %d, %v; want 5", n, err)
	}
	list, _ = tr.List()
	if len(list) != 1 || list[0].Name != "later.txt" {
		t.Fatalf("after purge: %+v", list)
	}
	if _, err := os.Stat(filepath.Join(tr.Dir(), "not-a-slot", "f")); err != nil {
		t.Fatal("Purge removed a directory it does not own")
	}
	if n, _ := tr.Purge(24 * time.Hour); n != 0 {
		t.Fatalf("second purge removed %d", n)
	}
	if n, _ := tr.Purge(0); n != 1 {
		t.Fatalf("purge of everything removed %d, want 1", n)
	}
}

func TestTrashRefusesBadInput(t *testing.T) {
	tr, err := NewTrash(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := tr.Put(dir, "d"); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Fatalf("Put of a directory: %v", err)
	}
	f := filepath.Join(dir, "f")
	os.WriteFile(f, nil, 0o644)
	if _, err := tr.Put(f, "../escape"); err == nil {
		t.Fatal("Put accepted an escaping name")
	}
	if _, err := tr.Put(filepath.Join(dir, "missing"), "missing"); err == nil {
		t.Fatal("Put of a missing file succeeded")
	}
	if _, err := NewTrash("", nil); err == nil {
		t.Fatal("empty trash dir accepted")
	}
}
