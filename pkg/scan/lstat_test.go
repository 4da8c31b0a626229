//go:build unix

package scan

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestDirListerMatchesLstat: the walker's lstat must give what os.Lstat
// gives, field for field, or the hasher's re-checks (through os) would see
// every file as changed, and the cache's records would never match.
func TestDirListerMatchesLstat(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o640))
	must(os.WriteFile(filepath.Join(dir, "exec"), []byte("#!"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "special"), nil, 0o644))
	must(os.Chmod(filepath.Join(dir, "special"), 0o644|os.ModeSetuid|os.ModeSetgid|os.ModeSticky))
	must(os.Mkdir(filepath.Join(dir, "sub"), 0o750))
	must(os.Symlink("file", filepath.Join(dir, "link")))
	must(os.Symlink("missing", filepath.Join(dir, "dangling")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	must(err)
	defer l.Close()

	root, err := os.OpenRoot(dir)
	must(err)
	defer root.Close()
	d, err := openDir(root)
	must(err)
	defer d.close()
	names, err := d.names()
	must(err)
	if len(names) != 8 {
		t.Fatalf("listed %q", names)
	}
	for _, name := range names {
		got, err := d.lstat(name)
		must(err)
		fi, err := os.Lstat(filepath.Join(dir, name))
		must(err)
		if want := statOf(fi); got != want {
			t.Errorf("%s: lstat %+v, os.Lstat %+v", name, got, want)
		}
	}
	if _, err := d.lstat("gone"); !os.IsNotExist(err) {
		t.Errorf("lstat of a missing name: %v", err)
	}
}
