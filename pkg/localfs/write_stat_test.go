package localfs

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// WriteAtomicStat returns what an Lstat of the new file returns, on both paths: directory
// handles (Linux, macOS) and the os.Root (elsewhere; forced here by dropping the handles).
func TestWriteAtomicStat(t *testing.T) {
	for _, path := range []string{"handles", "root"} {
		t.Run(path, func(t *testing.T) {
			fx := newFixture(t, Options{})
			if path == "root" {
				fx.f.dirs.close()
				fx.f.dirs = nil
			} else if fx.f.dirs == nil {
				t.Skip("no directory handles on this platform")
			}
			check := func(name string, fi os.FileInfo) {
				t.Helper()
				want, err := os.Lstat(fx.abs(name))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Name() != want.Name() || fi.Size() != want.Size() || fi.Mode() != want.Mode() ||
					!fi.ModTime().Equal(want.ModTime()) || Inode(fi) != Inode(want) || fi.IsDir() {
					t.Fatalf("WriteAtomicStat(%s) = %s %d %v %v ino %d; Lstat: %s %d %v %v ino %d", name,
						fi.Name(), fi.Size(), fi.Mode(), fi.ModTime(), Inode(fi),
						want.Name(), want.Size(), want.Mode(), want.ModTime(), Inode(want))
				}
			}
			fi, err := fx.f.WriteAtomicStat("a/b/new.txt", strings.NewReader("v1"), FileMeta{Mode: 0o640, ModTime: mt1}, &Expect{})
			if err != nil {
				t.Fatal(err)
			}
			check("a/b/new.txt", fi)
			// The engine records ExpectOf(what it returned) and plans the next write over it.
			fi, err = fx.f.WriteAtomicStat("a/b/new.txt", strings.NewReader("version 2"), FileMeta{}, ExpectOf(fi))
			if err != nil {
				t.Fatalf("replace over the returned stat: %v", err)
			}
			check("a/b/new.txt", fi)
			if e, ok := trashed(t, fx)["a/b/new.txt"]; !ok || readFile(t, e.Path) != "v1" {
				t.Fatalf("old version not in the trash: %+v", e)
			}
			// A change since the returned stat is caught, and a name through a symlink refused.
			os.WriteFile(fx.abs("a/b/new.txt"), []byte("user edit"), 0o644)
			if _, err := fx.f.WriteAtomicStat("a/b/new.txt", strings.NewReader("v3"), FileMeta{}, ExpectOf(fi)); !errors.Is(err, ErrChanged) {
				t.Fatalf("stale expect: %v, want ErrChanged", err)
			}
			outside := t.TempDir()
			if err := os.Symlink(outside, fx.abs("a/out")); err != nil {
				t.Fatal(err)
			}
			if _, err := fx.f.WriteAtomicStat("a/out/x.txt", strings.NewReader("evil"), FileMeta{}, nil); !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("write through a symlink: %v, want ErrUnsafePath", err)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("written outside the folder: %v", ents)
			}
			if readFile(t, fx.abs("a/b/new.txt")) != "user edit" {
				t.Fatal("user's edit lost")
			}
			noTemps(t, fx.root)
		})
	}
}
