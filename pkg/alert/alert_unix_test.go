//go:build unix

package alert

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCommandTimeoutKillsItsChildren(t *testing.T) {
	skipWithoutShell(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	logs := &logBuf{}
	n := New(Options{CommandTimeout: 300 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	n.Observe(Target{Repo: "r", Client: "c", OnError: "sleep 60 & echo $! > " + pidFile + "; wait"}, errors.New("boom"))
	n.Wait()
	if !strings.Contains(logs.String(), "on_error command killed") {
		t.Fatalf("no kill logged:\n%s", logs)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	// The killed grandchild may linger as a zombie of init for a moment;
	// what matters is that it does not run to its end.
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil && !zombie(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the hook's child %d still runs after the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// zombie reports whether pid has exited but not been reaped (Linux only;
// elsewhere false, and the test waits for the process to vanish).
func zombie(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(data), ") ")
	return strings.HasPrefix(rest, "Z")
}
