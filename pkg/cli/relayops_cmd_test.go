package cli

import (
	"context"

	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/storage"
	"github.com/escale-sync/escale/pkg/storage/testserver"
)

// opsKey is the age identity the ops tests' clients share: an identity
// rather than a passphrase spares every command scrypt's second.
var opsKey = func() *age.X25519Identity {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		panic(err)
	}
	return id
}()

// opsClient writes a client configuration of repository r on relay.
func opsClient(t *testing.T, root, name, relay string) (conf, folder string) {
	t.Helper()
	dir := filepath.Join(root, name)
	folder = filepath.Join(dir, "folder")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key.txt")
	if err := os.WriteFile(key, []byte(opsKey.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf = filepath.Join(dir, "escale.toml")
	body := fmt.Sprintf("# %s's setup\nstate_dir = %q\n[repository.r]\npath = %q\nrelay = %q # the relay\nclient = %q\nkey_file = %q\n",
		name, filepath.Join(dir, "state"), folder, relay, name, key)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf, folder
}

func mustRun(t *testing.T, want int, args ...string) string {
	t.Helper()
	code, out, errOut := runEscale(t, args...)
	if code != want {
		t.Fatalf("escale %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out + errOut
}

func writeFiles(t *testing.T, folder string, n int) {
	t.Helper()
	// Written a minute ago: a file changed within escale's settle time
	// would wait for the next round.
	past := time.Now().Add(-time.Minute)
	for i := range n {
		name := filepath.Join(folder, fmt.Sprintf("f%02d.txt", i))
		if err := os.WriteFile(name, []byte(strings.Repeat("x", i*100)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(name, past, past); err != nil {
			t.Fatal(err)
		}
	}
}

func sameFiles(t *testing.T, got, want string, n int) {
	t.Helper()
	for i := range n {
		name := fmt.Sprintf("f%02d.txt", i)
		a, err1 := os.ReadFile(filepath.Join(got, name))
		b, err2 := os.ReadFile(filepath.Join(want, name))
		if err1 != nil || err2 != nil || string(a) != string(b) {
			t.Fatalf("%s differs: %v %v", name, err1, err2)
		}
	}
}

// TestBackupRestoreCommands: alpha syncs, the relay is backed up without
// the key, restored into a new relay, and beta syncs from the restored one.
// Restore refuses a relay that is not empty.
func TestBackupRestoreCommands(t *testing.T) {
	root := t.TempDir()
	relay, restored := filepath.Join(root, "relay"), filepath.Join(root, "restored")
	for _, d := range []string{relay, restored} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	alphaConf, alpha := opsClient(t, root, "alpha", relay)
	writeFiles(t, alpha, 8)
	mustRun(t, ExitOK, "--config", alphaConf, "sync", "--once")

	// The backup needs no key: a configuration without a passphrase file.
	keyless := filepath.Join(root, "keyless.toml")
	if err := os.WriteFile(keyless, fmt.Appendf(nil, "[repository.r]\npath = %q\nrelay = %q\n", filepath.Join(root, "nowhere"), relay), 0o644); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(root, "r.tar.zst")
	out := mustRun(t, ExitOK, "--config", keyless, "backup", archive)
	if !strings.Contains(out, "backed up") {
		t.Fatalf("backup output: %s", out)
	}
	if out := mustRun(t, ExitError, "--config", keyless, "backup", archive); !strings.Contains(out, "already exists") {
		t.Fatalf("backup over an existing archive: %s", out)
	}

	betaConf, beta := opsClient(t, root, "beta", restored)
	mustRun(t, ExitOK, "--config", betaConf, "restore", archive)
	mustRun(t, ExitOK, "--config", betaConf, "sync", "--once")
	sameFiles(t, beta, alpha, 8)

	// The restored relay now holds the repository: a second restore is refused.
	if out := mustRun(t, ExitError, "--config", betaConf, "restore", archive); !strings.Contains(out, "--force") {
		t.Fatalf("restore into a non-empty relay: %s", out)
	}
}

// TestMigrateCommand: migrate a local relay to WebDAV; the configuration is
// switched (comments kept, .bak written) and both clients sync through the
// new relay. A non-empty destination, and a lock held by another client,
// are refused.
func TestMigrateCommand(t *testing.T) {
	root := t.TempDir()
	relay := filepath.Join(root, "relay")
	if err := os.MkdirAll(relay, 0o755); err != nil {
		t.Fatal(err)
	}
	alphaConf, alpha := opsClient(t, root, "alpha", relay)
	writeFiles(t, alpha, 5)
	mustRun(t, ExitOK, "--config", alphaConf, "sync", "--once")
	dav := testserver.RcloneWebDAV(t)

	// Another client holds the admin lock: refused, naming it.
	ctx := context.Background()
	src, err := storage.Open(ctx, relay)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	repo, err := protocol.Open(ctx, src, true, protocol.Credentials{Identity: opsKey})
	if err != nil {
		t.Fatal(err)
	}
	lock, err := repo.AcquireLock(ctx, "admin", protocol.LockOptions{Owner: "the-desk", Settle: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, ExitError, "--config", alphaConf, "migrate", dav.Spec); !strings.Contains(out, "the-desk") {
		t.Fatalf("migrate under another client's lock: %s", out)
	}
	if err := lock.Release(ctx); err != nil {
		t.Fatal(err)
	}

	out := mustRun(t, ExitOK, "--config", alphaConf, "migrate", dav.Spec)
	if !strings.Contains(out, "relay = ") || !strings.Contains(out, "intact") {
		t.Fatalf("migrate output: %s", out)
	}
	if _, err := os.Stat(alphaConf + ".bak"); err != nil {
		t.Fatalf("no backup of the configuration: %v", err)
	}
	cfg, err := config.Load(config.LoadOptions{Path: alphaConf})
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Repository("r").Relay; got != dav.Spec {
		t.Fatalf("the configuration's relay is %q, want %q", got, dav.Spec)
	}
	if b, _ := os.ReadFile(alphaConf); !strings.Contains(string(b), "# alpha's setup") || !strings.Contains(string(b), "# the relay") {
		t.Fatalf("comments lost:\n%s", b)
	}

	writeFiles(t, alpha, 7)
	mustRun(t, ExitOK, "--config", alphaConf, "sync", "--once")
	betaConf, beta := opsClient(t, root, "beta", dav.Spec)
	mustRun(t, ExitOK, "--config", betaConf, "sync", "--once")
	sameFiles(t, beta, alpha, 7)

	// The destination is not empty any more.
	if out := mustRun(t, ExitError, "--config", betaConf, "migrate", "--no-switch", relay); !strings.Contains(out, "not empty") {
		t.Fatalf("migrate into a non-empty relay: %s", out)
	}
}
