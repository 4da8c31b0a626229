package localfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// mountTmpfs mounts a fresh tmpfs of the given size on a new temp dir, or skips the test.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): needs root and CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// The folder on a tmpfs, the trash on the test's disk: trashing must copy across.
func TestTrashAcrossFilesystems(t *testing.T) {
	root := mountTmpfs(t, "4m")
	trash := filepath.Join(t.TempDir(), "trash")
	var rst, tst unix.Statfs_t
	os.MkdirAll(trash, 0o700)
	unix.Statfs(root, &rst)
	unix.Statfs(trash, &tst)
	if rst.Fsid == tst.Fsid {
		t.Skip("trash and tmpfs report the same filesystem")
	}
	f, err := OpenFolder(root, Options{TrashDir: trash})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fx := &fixture{root: root, trash: trash, f: f}

	// Replace: the old version is copied (no hard link across filesystems).
	old := fx.put(t, "d/doc.txt", "old version", mt1)
	os.Chmod(fx.abs("d/doc.txt"), 0o750)
	old, _ = os.Lstat(fx.abs("d/doc.txt"))
	if err := f.WriteAtomic("d/doc.txt", strings.NewReader("new version"), FileMeta{Mode: 0o644, ModTime: mt1}, ExpectOf(old)); err != nil {
		t.Fatal(err)
	}
	if readFile(t, fx.abs("d/doc.txt")) != "new version" {
		t.Fatal("not replaced")
	}
	e, ok := trashed(t, fx)["d/doc.txt"]
	if !ok || readFile(t, e.Path) != "old version" || e.Mode.Perm() != 0o750 || !e.ModTime.Equal(old.ModTime()) {
		t.Fatalf("copied trash entry: %+v", e)
	}
	// Remove: copied, then the original removed.
	gone := fx.put(t, "bye.txt", "remove me", mt1)
	if err := f.Remove("bye.txt", ExpectOf(gone)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(fx.abs("bye.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("original kept")
	}
	if e, ok := trashed(t, fx)["bye.txt"]; !ok || readFile(t, e.Path) != "remove me" || !e.ModTime.Equal(mt1) {
		t.Fatalf("removed file not copied to the trash: %+v", e)
	}
	// A symlink crosses as a symlink.
	os.Symlink("bye.txt", fx.abs("ln"))
	if err := f.Remove("ln", nil); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(trashed(t, fx)["ln"].Path); err != nil || target != "bye.txt" {
		t.Fatalf("trashed symlink: %q %v", target, err)
	}
	noTemps(t, root)
	noTemps(t, trash)
	// Batch mode syncs both filesystems.
	fb, err := OpenFolder(root, Options{TrashDir: trash, Durability: Batch})
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	fb.WriteAtomic("d/doc.txt", strings.NewReader("batch"), FileMeta{}, nil)
	if err := fb.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestDiskFull(t *testing.T) {
	root := mountTmpfs(t, "64k")
	f, err := OpenFolder(root, Options{TrashDir: filepath.Join(t.TempDir(), "trash")})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fx := &fixture{root: root, f: f}
	fi := fx.put(t, "big.bin", "the current version", mt1)

	big := io.LimitReader(zeros{}, 1<<20)
	err = f.WriteAtomic("big.bin", big, FileMeta{ModTime: mt1}, ExpectOf(fi))
	if err == nil {
		t.Fatal("1 MiB fitted in a 64 KiB tmpfs")
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("error does not wrap ENOSPC: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"no space left on " + root, "while writing big.bin", "nothing was replaced", "free some space"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if readFile(t, fx.abs("big.bin")) != "the current version" {
		t.Fatal("target changed")
	}
	noTemps(t, root)
	// Space is back once the temp is gone: a small write succeeds.
	if err := f.WriteAtomic("small.txt", strings.NewReader("fits"), FileMeta{}, &Expect{}); err != nil {
		t.Fatalf("after a full disk: %v", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

const fsImmutableFL = 0x10 // FS_IMMUTABLE_FL from linux/fs.h

// Permission errors name the file. As root, chmod does not deny anything, so an immutable
// directory (which even root cannot write) stands in.
func TestPermissionDenied(t *testing.T) {
	fx := newFixture(t, Options{})
	fx.put(t, "locked/file.txt", "mine", mt1)
	dir := fx.abs("locked")
	if os.Geteuid() != 0 {
		os.Chmod(dir, 0o555)
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
	} else {
		d, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		flags, err := unix.IoctlGetInt(int(d.Fd()), unix.FS_IOC_GETFLAGS)
		if err == nil {
			err = unix.IoctlSetPointerInt(int(d.Fd()), unix.FS_IOC_SETFLAGS, flags|fsImmutableFL)
		}
		if err != nil {
			d.Close()
			t.Skipf("cannot make a directory immutable here (%v)", err)
		}
		t.Cleanup(func() {
			unix.IoctlSetPointerInt(int(d.Fd()), unix.FS_IOC_SETFLAGS, flags)
			d.Close()
		})
	}
	err := fx.f.WriteAtomic("locked/new.txt", strings.NewReader("x"), FileMeta{}, nil)
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "permission denied") ||
		!strings.Contains(err.Error(), filepath.Join(dir, "new.txt")) {
		t.Fatalf("WriteAtomic in a locked dir: %v", err)
	}
	err = fx.f.Remove("locked/file.txt", nil)
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "file.txt") {
		t.Fatalf("Remove in a locked dir: %v", err)
	}
	if readFile(t, fx.abs("locked/file.txt")) != "mine" {
		t.Fatal("file damaged")
	}
}
