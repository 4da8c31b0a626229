package relaycheck

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/storage"
	"github.com/escale-sync/escale/pkg/storage/testserver"
)

func TestMain(m *testing.M) {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "RCLONE_") {
			os.Unsetenv(strings.SplitN(kv, "=", 2)[0])
		}
	}
	if err := storage.Init(storage.Options{RcloneConfig: filepath.Join(os.TempDir(), "escale-relaycheck-none.conf")}); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

var cleanupMount func(*testing.T, string)

func small() Options {
	o := Options{BigSize: 4 << 20, SmallCount: 16, ListWait: 20 * time.Second}
	if !testing.Short() {
		o.BigSize = 64 << 20
	}
	return o
}

func checkReport(t *testing.T, rep *Report, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("relay test failed: %v (%+v)", err, rep)
	}
	if rep.Failed {
		t.Fatalf("relay test reports failures: %+v", rep.Checks)
	}
	if !rep.Cleaned {
		t.Fatal("the test folder was not removed")
	}
	if rep.UploadMBps <= 0 || rep.DownloadMBps <= 0 || rep.SmallPutsPerSec <= 0 {
		t.Fatalf("missing measurements: %+v", rep)
	}
	names := map[string]bool{}
	for _, c := range rep.Checks {
		names[c.Name] = true
	}
	for _, want := range []string{"write", "read", "ranged read", "listing", "big object", "small objects", "conditional create", "delete"} {
		if !names[want] {
			t.Errorf("no %q check in the report", want)
		}
	}
}

func TestLocalFolder(t *testing.T) {
	dir := t.TempDir()
	rep, err := Run(context.Background(), dir, small())
	checkReport(t, rep, err)
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("left %d entries in the relay folder", len(entries))
	}
}

func TestEveryServer(t *testing.T) {
	for _, srv := range testserver.All(t) {
		t.Run(srv.Name, func(t *testing.T) {
			rep, err := Run(context.Background(), srv.Spec, small())
			checkReport(t, rep, err)
		})
	}
}

func TestStoppedServerIsOneClearSentence(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	srv.Stop()
	start := time.Now()
	rep, err := Run(context.Background(), srv.Spec, small())
	if err == nil {
		t.Fatalf("a stopped server passed: %+v", rep)
	}
	if !strings.Contains(err.Error(), "cannot reach the server") {
		t.Fatalf("unclear error for a stopped server: %v", err)
	}
	if rep.Problem == "" || !rep.Failed {
		t.Fatalf("report does not carry the problem: %+v", rep)
	}
	if strings.Contains(err.Error(), "pass=") && !strings.Contains(err.Error(), "pass='REDACTED'") {
		t.Fatalf("the message shows the password: %v", err)
	}
	t.Logf("stopped server reported in %s: %v", time.Since(start).Round(time.Millisecond), err)
}

func TestMissingRemote(t *testing.T) {
	_, err := Run(context.Background(), "no-such-remote:relay", small())
	if err == nil || !strings.Contains(err.Error(), "no-such-remote") {
		t.Fatalf("missing remote: %v", err)
	}
}

func TestReadOnlyRelay(t *testing.T) {
	if os.Geteuid() == 0 {
		// root writes through any permission bits; use a read-only bind of a
		// tmpfs instead.
		dir := t.TempDir()
		if err := mountReadOnly(dir); err != nil {
			t.Skipf("cannot make a read-only folder as root here: %v", err)
		}
		t.Cleanup(func() { cleanupMount(t, dir) })
		_, err := Run(context.Background(), dir, small())
		if err == nil || !(strings.Contains(err.Error(), "read-only") || strings.Contains(err.Error(), "refused a write")) {
			t.Fatalf("read-only relay: %v", err)
		}
		return
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), dir, small())
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("read-only relay: %v", err)
	}
}

func TestInterruptedRunCleansUp(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	o := small()
	o.Progress = func(check string) {
		if check == "big object" {
			cancel()
		}
	}
	rep, err := Run(ctx, dir, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	if !rep.Cleaned {
		t.Fatal("interrupted run left its folder")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("left %d entries", len(entries))
	}
}

func TestBadCredentialsIsOneClearSentence(t *testing.T) {
	srv := testserver.RcloneWebDAV(t)
	// A valid obscured password that is not the server's.
	bad := regexp.MustCompile(`(,pass=)[^,:]+`).ReplaceAllString(srv.Spec, "${1}"+wrongObscured)
	if bad == srv.Spec {
		t.Fatalf("no password in %s", srv.Spec)
	}
	_, err := Run(context.Background(), bad, small())
	if err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Fatalf("bad credentials: %v", err)
	}
	if strings.Contains(err.Error(), wrongObscured) {
		t.Fatalf("the message shows the password: %v", err)
	}
}

// wrongObscured is "wrong password" obscured the way rclone.conf stores it.
const wrongObscured = "n9corO4NtMCLK9giQils6-9b6JMGPE1GgmNVpuIV"
