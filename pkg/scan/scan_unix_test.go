//go:build unix

package scan

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/escale-sync/escale/pkg/state"
)

const helperEnv = "ESCALE_SCAN_TEST_ROOT"

// TestMain doubles as a helper that scans a folder as another user (root
// reads everything, so permission errors need an unprivileged process).
func TestMain(m *testing.M) {
	if root := os.Getenv(helperEnv); root != "" {
		res, err := permScan(root)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(res)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type permResult struct {
	Paths  []string
	Errors map[string]string
}

func permScan(root string) (permResult, error) {
	res := permResult{Errors: map[string]string{}}
	st, err := (&Scanner{Root: root}).Scan(context.Background(), func(e Entry) error {
		res.Paths = append(res.Paths, e.Path)
		return nil
	})
	for _, pe := range st.Errors {
		res.Errors[pe.Path] = pe.Err.Error()
	}
	return res, err
}

func TestPermissionErrorsReported(t *testing.T) {
	base, err := os.MkdirTemp("", "escale-scan-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	root := filepath.Join(base, "root")
	for p, c := range map[string]string{
		"ok.txt": "ok", "secret.txt": "s", "locked/inner": "i", "noexec/f": "f",
		"d/.escaleignore": "x\n", "d/x": "ignored?", "z/after": "scan goes on",
	} {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, mode := range map[string]os.FileMode{
		"secret.txt": 0, "locked": 0, "noexec": 0o644, "d/.escaleignore": 0,
	} {
		if err := os.Chmod(filepath.Join(root, p), mode); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(base, 0o755)

	var res permResult
	if os.Geteuid() != 0 {
		if res, err = permScan(root); err != nil {
			t.Fatal(err)
		}
	} else {
		res = scanAsNobody(t, base, root)
	}

	want := []string{"ok.txt", "z", "z/after"}
	if !slices.Equal(res.Paths, want) {
		t.Errorf("paths = %q, want %q", res.Paths, want)
	}
	for _, p := range []string{"secret.txt", "locked", "noexec", "d"} {
		if msg, ok := res.Errors[p]; !ok || !strings.Contains(msg, "permission denied") {
			t.Errorf("error for %s = %q, want permission denied (all: %v)", p, msg, res.Errors)
		}
	}
	if len(res.Errors) != 4 {
		t.Errorf("errors = %v, want 4", res.Errors)
	}
}

// scanAsNobody runs permScan in a copy of this test binary as uid 65534.
func scanAsNobody(t *testing.T, base, root string) permResult {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(base, "scan.test")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+root)
	cmd.Dir = base
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper as nobody: %v: %s", err, stderr.String())
	}
	var res permResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	return res
}

func TestSpecialFilesSkipped(t *testing.T) {
	root := tree(t, map[string]string{"f": "x"})
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(root, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	wantSkip := []Skip{{"fifo", "named pipe"}, {"sock", "socket"}}
	if os.Geteuid() == 0 {
		// /dev/null's numbers: char device 1,3.
		if err := syscall.Mknod(filepath.Join(root, "null"), syscall.S_IFCHR|0o644, 1<<8|3); err == nil {
			wantSkip = []Skip{{"fifo", "named pipe"}, {"null", "character device"}, {"sock", "socket"}}
		}
	}
	got, st := scanAll(t, &Scanner{Root: root})
	if !slices.Equal(paths(got), []string{"f"}) {
		t.Errorf("paths = %q", paths(got))
	}
	if !slices.Equal(st.Skipped, wantSkip) {
		t.Errorf("skipped = %v, want %v", st.Skipped, wantSkip)
	}
}

// A file the caller just wrote is taken at the hash it gives, without a
// read, only while its lstat is exactly the one it recorded.
func TestKnownFilesAreNotRead(t *testing.T) {
	root := tree(t, map[string]string{"a": "alpha", "b": "beta"})
	known := map[string]state.FileRecord{}
	claim := func(name string) [32]byte {
		fi, err := os.Lstat(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		// Not the content's hash: a read would show.
		var h [32]byte
		copy(h[:], "what the caller wrote as "+name)
		known[name] = KnownRecord(fi, h)
		return h
	}
	ha, hb := claim("a"), claim("b")
	// b changes after its record was taken: same size, mtime put back, but
	// its change time moved.
	mt := time.Now().Add(-time.Hour)
	if err := os.WriteFile(filepath.Join(root, "b"), []byte("BETA"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(root, "b"), mt, mt); err != nil {
		t.Fatal(err)
	}
	bi, _ := os.Lstat(filepath.Join(root, "b"))
	kb := known["b"]
	kb.ModTimeNs = bi.ModTime().UnixNano()
	known["b"] = kb
	s := &Scanner{Root: root, Cache: openCache(t), RacyWindow: testWindow, Known: func(p string) (state.FileRecord, bool) {
		r, ok := known[p]
		return r, ok
	}}
	got, st := scanAll(t, s)
	es := byPath(got)
	if es["a"].Hash != ha || st.Hashed != 1 {
		t.Fatalf("a known file was read (hashed %d) or took another hash: %x", st.Hashed, es["a"].Hash)
	}
	if es["b"].Hash == hb || es["b"].Hash != blake3.Sum256([]byte("BETA")) {
		t.Fatalf("a file changed since its record kept the recorded hash: %x", es["b"].Hash)
	}
}
