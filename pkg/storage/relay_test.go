package storage_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/escale-sync/escale/pkg/storage"
	"github.com/escale-sync/escale/pkg/storage/storagetest"
)

// testConfig scrubs RCLONE_* variables and points rclone at a fresh
// rclone.conf holding an alias remote and a local remote, both into a temp
// folder. It returns the config path and that folder.
func testConfig(t *testing.T) (conf, dir string) {
	t.Helper()
	storagetest.ScrubEnv(t)
	tmp := t.TempDir()
	dir = filepath.Join(tmp, "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf = filepath.Join(tmp, "rclone.conf")
	text := "[escaletest-alias]\ntype = alias\nremote = " + dir + "\n\n[escaletest-local]\ntype = local\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := storage.Init(storage.Options{RcloneConfig: conf}); err != nil {
		t.Fatalf("init: %v", err)
	}
	return conf, dir
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func openRelay(t *testing.T, spec string, o ...storage.OpenOption) *storage.Relay {
	t.Helper()
	r, err := storage.Open(context.Background(), spec, o...)
	if err != nil {
		t.Fatalf("open %s: %v", spec, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestConformanceLocal(t *testing.T) {
	testConfig(t)
	storagetest.RunConformance(t, t.TempDir())
}

func TestConformanceMemory(t *testing.T) {
	testConfig(t)
	storagetest.RunConformance(t, ":memory:"+randomName("escale-"))
}

func TestConformanceConfigRemote(t *testing.T) {
	_, dir := testConfig(t)
	t.Run("alias", func(t *testing.T) {
		storagetest.RunConformance(t, "escaletest-alias:relay")
		if _, err := os.Stat(filepath.Join(dir, "relay")); err != nil {
			t.Fatalf("alias remote did not write into its target: %v", err)
		}
	})
	t.Run("local", func(t *testing.T) {
		storagetest.RunConformance(t, "escaletest-local:"+t.TempDir())
	})
}
