package storage_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rclone/rclone/fs/config/obscure"

	"github.com/escale-sync/escale/pkg/storage"
)

func TestListRemotesAndRemoteType(t *testing.T) {
	conf, _ := testConfig(t)
	ctx := context.Background()
	remotes, err := storage.ListRemotes(ctx)
	if err != nil || !slices.Equal(remotes, []string{"escaletest-alias", "escaletest-local"}) {
		t.Fatalf("list remotes: %v, %v", remotes, err)
	}
	for name, want := range map[string]string{"escaletest-alias": "alias", "escaletest-local:": "local"} {
		if typ, err := storage.RemoteType(ctx, name); err != nil || typ != want {
			t.Fatalf("type of %s: %q, %v; want %q", name, typ, err, want)
		}
	}
	_, err = storage.RemoteType(ctx, "nope")
	if storage.KindOf(err) != storage.KindNotFound || !strings.Contains(err.Error(), conf) {
		t.Fatalf("type of an undefined remote: %v; want not found naming %s", err, conf)
	}
	if storage.ConfigPath() != conf {
		t.Fatalf("ConfigPath() = %q, want %q", storage.ConfigPath(), conf)
	}
}

func TestCreateRemoteObscuresPasswords(t *testing.T) {
	conf, _ := testConfig(t)
	// Capture rclone's logs at debug level: the password must never appear.
	var logs logRecorder
	if err := storage.Init(storage.Options{RcloneConfig: conf, Logger: slog.New(&logs)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { storage.Init(storage.Options{RcloneConfig: conf}) })
	ctx := context.Background()
	const secret = "correct horse battery staple"
	err := storage.CreateRemote(ctx, "made", "sftp", map[string]string{"host": "relay.example", "user": "u", "pass": secret})
	if err != nil {
		t.Fatalf("create remote: %v", err)
	}
	text, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(text), secret) {
		t.Fatalf("rclone.conf holds the password in clear:\n%s", text)
	}
	var stored string
	for line := range strings.SplitSeq(string(text), "\n") {
		if v, ok := strings.CutPrefix(line, "pass = "); ok {
			stored = v
		}
	}
	if revealed, err := obscure.Reveal(stored); err != nil || revealed != secret {
		t.Fatalf("stored pass %q reveals to %q (%v), want the password", stored, revealed, err)
	}
	if typ, err := storage.RemoteType(ctx, "made"); err != nil || typ != "sftp" {
		t.Fatalf("type of the new remote: %q, %v", typ, err)
	}
	if remotes, _ := storage.ListRemotes(ctx); !slices.Contains(remotes, "made") {
		t.Fatalf("list remotes after create: %v", remotes)
	}
	if logs.contains(secret) {
		t.Fatalf("the password reached the log")
	}

	// The new remote works as a relay spec (a local one, to need no server).
	dir := t.TempDir()
	if err := storage.CreateRemote(ctx, "made-local", "alias", map[string]string{"remote": dir}); err != nil {
		t.Fatal(err)
	}
	r := openRelay(t, "made-local:relay")
	if _, err := r.Put(ctx, "f", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "relay", "f")); err != nil {
		t.Fatalf("object not in the alias target: %v", err)
	}
}

func TestCreateRemoteErrors(t *testing.T) {
	testConfig(t)
	ctx := context.Background()
	if err := storage.CreateRemote(ctx, "x", "nosuchbackend", nil); err == nil || !strings.Contains(err.Error(), "nosuchbackend") {
		t.Fatalf("unknown backend: %v", err)
	}
	if err := storage.CreateRemote(ctx, "bad name!", "local", nil); err == nil {
		t.Fatal("invalid remote name accepted")
	}
	// OAuth backends need a browser: refused with a hint, not a hang.
	err := storage.CreateRemote(ctx, "gd", "drive", nil)
	if err == nil || !strings.Contains(err.Error(), "rclone config") {
		t.Fatalf("interactive backend: %v, want a hint to run rclone config", err)
	}
}

func TestInitHonoursRcloneConfigEnv(t *testing.T) {
	conf, _ := testConfig(t)
	other := filepath.Join(t.TempDir(), "env.conf")
	if err := os.WriteFile(other, []byte("[from-env]\ntype = local\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RCLONE_CONFIG", other)
	if err := storage.Init(storage.Options{}); err != nil {
		t.Fatal(err)
	}
	if storage.ConfigPath() != other {
		t.Fatalf("ConfigPath() = %q, want $RCLONE_CONFIG %q", storage.ConfigPath(), other)
	}
	if remotes, err := storage.ListRemotes(context.Background()); err != nil || !slices.Equal(remotes, []string{"from-env"}) {
		t.Fatalf("remotes from $RCLONE_CONFIG: %v, %v", remotes, err)
	}
	// An explicit path wins, and re-points rclone.
	if err := storage.Init(storage.Options{RcloneConfig: conf}); err != nil {
		t.Fatal(err)
	}
	if remotes, _ := storage.ListRemotes(context.Background()); !slices.Contains(remotes, "escaletest-alias") {
		t.Fatalf("after re-pointing: %v", remotes)
	}
}

func TestInitRefusesUnreadableConfig(t *testing.T) {
	conf, _ := testConfig(t)
	bad := filepath.Join(t.TempDir(), "encrypted.conf")
	// An encrypted config without RCLONE_CONFIG_PASS: rclone would prompt, or exit.
	text := "# Encrypted rclone configuration File\n\nRCLONE_ENCRYPT_V0:\nbm90IHJlYWxseSBlbmNyeXB0ZWQgYnV0IGxvbmcgZW5vdWdoIHRvIHRyeSB0byBkZWNyeXB0\n"
	if err := os.WriteFile(bad, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	err := storage.Init(storage.Options{RcloneConfig: bad})
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "RCLONE_CONFIG_PASS") {
		t.Fatalf("init with an undecryptable config: %v", err)
	}
	// Until a good Init, relays and RPCs refuse (instead of rclone exiting).
	if _, err := storage.Open(context.Background(), "escaletest-alias:x"); err == nil {
		t.Fatal("open after a failed init succeeded")
	}
	if _, err := storage.ListRemotes(context.Background()); err == nil {
		t.Fatal("list remotes after a failed init succeeded")
	}
	if err := storage.Init(storage.Options{RcloneConfig: conf}); err != nil {
		t.Fatalf("init with a good config again: %v", err)
	}
	openRelay(t, "escaletest-alias:x")
}

func TestRcloneVersion(t *testing.T) {
	if v := storage.RcloneVersion(); !strings.HasPrefix(v, "v1.") {
		t.Fatalf("RcloneVersion() = %q", v)
	}
}
