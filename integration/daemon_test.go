//go:build unix

// Package integration runs the real escale binary as separate processes.
package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

var escaleBin string

func TestMain(m *testing.M) {
	// toxiproxy's toxics log through zerolog's global logger: noise here.
	zerolog.SetGlobalLevel(zerolog.Disabled)
	dir, err := os.MkdirTemp("", "escale-integration-")
	if err != nil {
		panic(err)
	}
	escaleBin = filepath.Join(dir, "escale")
	build := exec.Command("go", "build", "-o", escaleBin, "../cmd/escale")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build escale:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// clientDir writes a client's configuration on a shared local relay.
func clientDir(t *testing.T, root, name string) (config, folder string) {
	t.Helper()
	dir := filepath.Join(root, name)
	folder = filepath.Join(dir, "folder")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	config = filepath.Join(dir, "escale.toml")
	body := fmt.Sprintf(`state_dir = %q
log_level = "debug"
[repository.r]
path = %q
relay = %q
client = %q
passphrase_file = %q
min_poll = "300ms"
max_poll = "2s"
`, filepath.Join(dir, "state"), folder, filepath.Join(root, "relay"), name, filepath.Join(root, "pass"))
	if err := os.WriteFile(config, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return config, folder
}

type daemon struct {
	cmd *exec.Cmd
	log *bytes.Buffer
}

func startDaemon(t *testing.T, config string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(escaleBin, "--config", config, "sync"), log: &bytes.Buffer{}}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.Env = scrubbedEnv()
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.cmd.Process.Kill(); d.cmd.Wait() })
	return d
}

func scrubbedEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RCLONE_") && !strings.HasPrefix(kv, "ESCALE_") {
			env = append(env, kv)
		}
	}
	return env
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hasFile(path, content string) func() bool {
	return func() bool {
		b, err := os.ReadFile(path)
		return err == nil && string(b) == content
	}
}

// Two daemons as real processes: edits travel both ways by themselves, a
// SIGHUP reloads the configuration without losing anything, SIGTERM stops
// cleanly with exit code 0.
func TestDaemonsAsProcesses(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "relay"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "pass"), []byte("integration words\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	aConf, aDir := clientDir(t, root, "alpha")
	bConf, bDir := clientDir(t, root, "beta")
	// alpha creates the repository first, so the daemons do not race to.
	if out, err := exec.Command(escaleBin, "--config", aConf, "sync", "--once").CombinedOutput(); err != nil {
		t.Fatalf("first round: %v\n%s", err, out)
	}
	a, b := startDaemon(t, aConf), startDaemon(t, bConf)

	if err := os.WriteFile(filepath.Join(aDir, "one.txt"), []byte("from alpha"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one.txt on beta", hasFile(filepath.Join(bDir, "one.txt"), "from alpha"))
	if err := os.WriteFile(filepath.Join(bDir, "two.txt"), []byte("from beta"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two.txt on alpha", hasFile(filepath.Join(aDir, "two.txt"), "from beta"))

	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload", func() bool { return strings.Contains(a.log.String(), "configuration reloaded") })
	if err := os.WriteFile(filepath.Join(aDir, "three.txt"), []byte("after reload"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three.txt on beta", hasFile(filepath.Join(bDir, "three.txt"), "after reload"))

	for _, d := range []*daemon{a, b} {
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := d.cmd.Wait(); err != nil {
			t.Fatalf("daemon stopped with %v\n%s", err, d.log.String())
		}
	}
	// status works on the stopped repository and reads the daemon's last round.
	out, err := exec.Command(escaleBin, "--config", aConf, "status").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "not running") || !strings.Contains(string(out), "last success") {
		t.Fatalf("status after the daemon: %v\n%s", err, out)
	}
}
