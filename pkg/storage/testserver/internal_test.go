package testserver

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/rclone/rclone/fs/fspath"
)

// TestConnStringParses checks rclone reads back every value connString
// writes, including ones holding the characters its parser splits on.
func TestConnStringParses(t *testing.T) {
	opts := []opt{
		{"url", "http://127.0.0.1:8080/a,b"},
		{"user", "it's"},
		{"pass", `say "hi"`},
		{"plain", "value"},
		{"empty", ""},
	}
	const path = "/tmp/relay dir/x"
	spec := connString("webdav", opts, path)
	p, err := fspath.Parse(spec)
	if err != nil {
		t.Fatalf("parse %s: %v", spec, err)
	}
	if p.Name != ":webdav" || p.Path != path {
		t.Errorf("parsed %s as backend %q path %q, want :webdav and %q", spec, p.Name, p.Path, path)
	}
	for _, o := range opts {
		if got, ok := p.Config[o.key]; !ok || got != o.value {
			t.Errorf("%s = %q (present %v), want %q; spec %s", o.key, got, ok, o.value, spec)
		}
	}
	if len(p.Config) != len(opts) {
		t.Errorf("parsed %d options from %s, want %d", len(p.Config), spec, len(opts))
	}
}

// recordingTB stands in for a test, to watch must choose between skipping
// and failing without ending the real test.
type recordingTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Skipf(format string, args ...any) {
	r.skipped, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func runMust(err error) *recordingTB {
	r := &recordingTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		must(r, "vsftpd", nil, err)
	}()
	<-done
	return r
}

// TestMissingSoftwareSkipsUnlessRequired checks a missing server skips the
// test, fails it under ESCALE_REQUIRE_SERVERS=1, and that other errors
// always fail.
func TestMissingSoftwareSkipsUnlessRequired(t *testing.T) {
	_, missing := findBinary("vsftpd", "/nonexistent/escale/vsftpd")
	if !errors.Is(missing, errMissing) || !strings.Contains(missing.Error(), "install-test-servers.sh") {
		t.Fatalf("findBinary of a missing file = %v, want errMissing with the install hint", missing)
	}
	broken := errors.New("vsftpd exited before listening")

	t.Setenv(RequireEnv, "")
	if r := runMust(missing); !r.skipped || r.failed {
		t.Errorf("missing software without %s: skipped %v failed %v, want a skip", RequireEnv, r.skipped, r.failed)
	}
	if r := runMust(broken); !r.failed {
		t.Errorf("a server that fails to start must fail the test, got skipped %v", r.skipped)
	}

	t.Setenv(RequireEnv, "1")
	if r := runMust(missing); !r.failed || r.skipped {
		t.Errorf("missing software with %s=1: skipped %v failed %v, want a failure", RequireEnv, r.skipped, r.failed)
	}
}

// TestAllStartsEachServerOnce checks All against the starters: each server
// at most once, with a spec, an address and a folder on disk, and none left
// out when servers are required (bar rclone's FTP under the race detector).
func TestAllStartsEachServerOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts every server; TestServers covers them one by one")
	}
	seen := map[string]bool{}
	for _, s := range All(t) {
		if seen[s.Name] {
			t.Errorf("All returned %s twice", s.Name)
		}
		seen[s.Name] = true
		if s.Spec == "" || s.Addr == "" {
			t.Errorf("%s: empty Spec %q or Addr %q", s.Name, s.Spec, s.Addr)
		}
		if fi, err := os.Stat(s.Dir); err != nil || !fi.IsDir() {
			t.Errorf("%s: Dir %q is not a folder (%v)", s.Name, s.Dir, err)
		}
	}
	for _, st := range starters() {
		excused := raceDetector && st.name == "rclone-ftp"
		if !seen[st.name] && required() && !excused {
			t.Errorf("All left out %s although %s=1", st.name, RequireEnv)
		}
	}
	if want := 3; len(seen) < want {
		t.Errorf("All started %d servers, want at least rclone's in-process ones", len(seen))
	}
}
