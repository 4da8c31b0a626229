package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escale-sync/escale/pkg/state"
)

// syncWorld is a relay folder and client configurations sharing it.
type syncWorld struct {
	t    *testing.T
	root string
}

func (w *syncWorld) client(name, passphrase string) (config, folder string) {
	dir := filepath.Join(w.root, name)
	folder = filepath.Join(dir, "folder")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		w.t.Fatal(err)
	}
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte(passphrase+"\n"), 0o600); err != nil {
		w.t.Fatal(err)
	}
	config = filepath.Join(dir, "escale.toml")
	body := fmt.Sprintf(`state_dir = %q
[repository.r]
path = %q
relay = %q
client = %q
passphrase_file = %q
`, filepath.Join(dir, "state"), folder, filepath.Join(w.root, "relay"), name, pass)
	if err := os.WriteFile(config, []byte(body), 0o644); err != nil {
		w.t.Fatal(err)
	}
	return config, folder
}

func TestSyncOnceExitCodes(t *testing.T) {
	w := &syncWorld{t: t, root: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(w.root, "relay"), 0o755); err != nil {
		t.Fatal(err)
	}
	alphaConf, alpha := w.client("alpha", "same words")
	betaConf, beta := w.client("beta", "same words")
	for i := range 12 {
		if err := os.WriteFile(filepath.Join(alpha, fmt.Sprintf("f%02d.txt", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, errOut := runEscale(t, "--config", alphaConf, "sync", "--once"); code != ExitOK || !strings.Contains(out, "pushed 12") {
		t.Fatalf("alpha: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runEscale(t, "--config", betaConf, "sync", "--once"); code != ExitOK || !strings.Contains(out, "pulled 12") {
		t.Fatalf("beta: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(beta, "f07.txt")); err != nil {
		t.Fatal(err)
	}

	// A wrong passphrase: exit 1 and one clear line.
	gammaConf, _ := w.client("gamma", "other words")
	code, _, errOut := runEscale(t, "--config", gammaConf, "sync", "--once")
	if code != ExitError || !strings.Contains(errOut, "wrong passphrase") {
		t.Fatalf("wrong passphrase: exit %d\n%s", code, errOut)
	}

	// Every file deleted on alpha: held back, exit 2, beta keeps its files.
	for i := range 12 {
		os.Remove(filepath.Join(alpha, fmt.Sprintf("f%02d.txt", i)))
	}
	code, out, _ := runEscale(t, "--config", alphaConf, "sync", "--once")
	if code != ExitWaiting || !strings.Contains(out, "mass deletion") {
		t.Fatalf("mass deletion: exit %d\n%s", code, out)
	}
	// Confirmed: the deletion goes through.
	if code, out, errOut := runEscale(t, "--config", alphaConf, "sync", "--once", "--allow-mass-delete"); code != ExitOK {
		t.Fatalf("allowed mass deletion: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runEscale(t, "--config", betaConf, "sync", "--once", "--allow-mass-delete"); code != ExitOK {
		t.Fatalf("beta after deletion: exit %d\n%s", code, errOut)
	}
	if entries, _ := os.ReadDir(beta); len(entries) != 0 {
		t.Fatalf("beta still has %d files", len(entries))
	}
}

func TestSyncUnknownRepo(t *testing.T) {
	w := &syncWorld{t: t, root: t.TempDir()}
	conf, _ := w.client("alpha", "words")
	code, _, errOut := runEscale(t, "--config", conf, "sync", "--once", "--repo", "nope")
	if code != ExitError || !strings.Contains(errOut, `no repository "nope"`) {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}

// A second escale on a repository in use waits (exit 2); it does not fail.
func TestSyncOnceOverlapWaits(t *testing.T) {
	w := &syncWorld{t: t, root: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(w.root, "relay"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf, _ := w.client("alpha", "words here")
	if code, out, errOut := runEscale(t, "--config", conf, "sync", "--once"); code != ExitOK {
		t.Fatalf("first run: exit %d %s %s", code, out, errOut)
	}
	db, err := state.Open(filepath.Join(w.root, "alpha", "state", "r", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	code, out, _ := runEscale(t, "--config", conf, "sync", "--once")
	if code != ExitWaiting || !strings.Contains(out, "in use") {
		t.Fatalf("overlapping run: exit %d\n%s", code, out)
	}
}

func TestAccessCommand(t *testing.T) {
	w := &syncWorld{t: t, root: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(w.root, "relay"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf, folder := w.client("alpha", "words here")
	secret := filepath.Join(folder, "secret.txt")
	if err := os.WriteFile(secret, []byte("keep me here"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runEscale(t, "--config", conf, "access", secret, "r-"); code != ExitOK || !strings.HasPrefix(out, "r-w+\tsecret.txt") {
		t.Fatalf("set: exit %d %q %s", code, out, errOut)
	}
	if code, out, _ := runEscale(t, "--config", conf, "access", "--list"); code != ExitOK || !strings.Contains(out, "r-w+\tsecret.txt") {
		t.Fatalf("list: exit %d %q", code, out)
	}
	if code, out, _ := runEscale(t, "--config", conf, "sync", "--once"); code != ExitOK || !strings.Contains(out, "pushed 0") {
		t.Fatalf("an r- file was pushed: exit %d %q", code, out)
	}
	if code, _, errOut := runEscale(t, "--config", conf, "access", secret, "q+"); code != ExitError || !strings.Contains(errOut, "r+, r-, w+ or w-") {
		t.Fatalf("bad modifiers: exit %d %s", code, errOut)
	}
	if code, _, errOut := runEscale(t, "--config", conf, "access", "/etc/hostname"); code != ExitError || !strings.Contains(errOut, "no repository folder") {
		t.Fatalf("outside file: exit %d %s", code, errOut)
	}
}

func TestStatusCommand(t *testing.T) {
	w := &syncWorld{t: t, root: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(w.root, "relay"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf, folder := w.client("alpha", "words here")
	code, _, errOut := runEscale(t, "--config", conf, "status")
	if code != ExitError || !strings.Contains(errOut, "never synced") {
		t.Fatalf("before any round: exit %d %s", code, errOut)
	}
	if err := os.WriteFile(filepath.Join(folder, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runEscale(t, "--config", conf, "sync", "--once"); code != ExitOK {
		t.Fatalf("sync: %d %s %s", code, out, errOut)
	}
	code, out, errOut := runEscale(t, "--config", conf, "status")
	if code != ExitOK || !strings.Contains(out, "r: not running") || !strings.Contains(out, "files:         1") || !strings.Contains(out, "1 of this client's updates waiting") {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runEscale(t, "--config", conf, "status", "--json")
	if code != ExitOK || !strings.Contains(out, `"published": 1`) {
		t.Fatalf("status --json: exit %d\n%s", code, out)
	}
}

func TestSyncDryRunChangesNothing(t *testing.T) {
	w := &syncWorld{t: t, root: t.TempDir()}
	relay := filepath.Join(w.root, "relay")
	if err := os.MkdirAll(relay, 0o755); err != nil {
		t.Fatal(err)
	}
	alphaConf, alpha := w.client("alpha", "same words")
	betaConf, beta := w.client("beta", "same words")
	// Against an empty relay a dry run says the real run creates it.
	if code, _, errOut := runEscale(t, "--config", alphaConf, "sync", "--dry-run"); code != ExitError || !strings.Contains(errOut, "first real run creates it") {
		t.Fatalf("dry run on an empty relay: exit %d %s", code, errOut)
	}
	if entries, _ := os.ReadDir(relay); len(entries) != 0 {
		t.Fatal("a dry run wrote to the relay")
	}
	if err := os.WriteFile(filepath.Join(alpha, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	runEscale(t, "--config", alphaConf, "sync", "--once")
	if err := os.WriteFile(filepath.Join(alpha, "b.txt"), []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runEscale(t, "--config", alphaConf, "sync", "--dry-run")
	if code != ExitOK || !strings.Contains(out, "would push new b.txt") {
		t.Fatalf("alpha dry run: exit %d\n%s%s", code, out, errOut)
	}
	runEscale(t, "--config", betaConf, "sync", "--once") // registers beta, pulls a.txt
	os.Remove(filepath.Join(beta, "a.txt"))
	before := snapshot(t, w.root)
	code, out, _ = runEscale(t, "--config", betaConf, "sync", "--dry-run")
	if code != ExitOK || !strings.Contains(out, "would push deletion of a.txt") {
		t.Fatalf("beta dry run: exit %d\n%s", code, out)
	}
	if after := snapshot(t, w.root); after != before {
		t.Fatalf("a dry run changed files:\nbefore %s\nafter  %s", before, after)
	}
}

// snapshot lists the relay and the folders (not the state databases, whose
// hash cache a dry run may refresh).
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || strings.Contains(p, "/state/") {
			return nil
		}
		fmt.Fprintf(&b, "%s:%d:%d ", strings.TrimPrefix(p, root), fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	return b.String()
}

func TestLsShowsClientsDecrypted(t *testing.T) {
	w := &syncWorld{t: t, root: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(w.root, "relay"), 0o755); err != nil {
		t.Fatal(err)
	}
	alphaConf, alpha := w.client("alpha", "same words")
	betaConf, _ := w.client("beta", "same words")
	runEscale(t, "--config", betaConf, "sync", "--once")
	if err := os.WriteFile(filepath.Join(alpha, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	runEscale(t, "--config", alphaConf, "sync", "--once")
	code, out, errOut := runEscale(t, "--config", alphaConf, "ls")
	if code != ExitOK || !strings.Contains(out, "alpha   shared  1        1") || !strings.Contains(out, "beta") {
		t.Fatalf("ls: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runEscale(t, "--config", alphaConf, "ls", "--json")
	if code != ExitOK || !strings.Contains(out, `"name": "alpha"`) || !strings.Contains(out, `"updates_on_relay": 1`) {
		t.Fatalf("ls --json: exit %d\n%s", code, out)
	}
	// A wrong key cannot name the clients: a clear error.
	gammaConf, _ := w.client("gamma", "other words")
	if code, _, errOut := runEscale(t, "--config", gammaConf, "ls"); code != ExitError || !strings.Contains(errOut, "wrong passphrase") {
		t.Fatalf("ls with a wrong key: exit %d %s", code, errOut)
	}
}
