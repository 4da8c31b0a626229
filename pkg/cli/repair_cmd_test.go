package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRepairCommand: the relay is wiped; sync refuses and names the
// repair; `escale repair --keys` (from `escale key export`) puts the same
// repository back, and both clients sync again without a repair on the
// second one.
func TestRepairCommand(t *testing.T) {
	root := t.TempDir()
	relay := filepath.Join(root, "relay")
	if err := os.MkdirAll(relay, 0o755); err != nil {
		t.Fatal(err)
	}
	alphaConf, alpha := opsClient(t, root, "alpha", relay)
	betaConf, beta := opsClient(t, root, "beta", relay)
	writeFiles(t, alpha, 3)
	mustRun(t, ExitOK, "--config", alphaConf, "sync", "--once")
	mustRun(t, ExitOK, "--config", betaConf, "sync", "--once")
	sameFiles(t, beta, alpha, 3)

	export := filepath.Join(root, "keys.age")
	t.Setenv("ESCALE_NEW_PASSPHRASE", "export passphrase for the test")
	mustRun(t, ExitOK, "--config", alphaConf, "key", "export", export)

	if err := os.RemoveAll(relay); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(relay, 0o755); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, ExitError, "--config", alphaConf, "sync", "--once"); !strings.Contains(out, "escale repair") {
		t.Fatalf("a wiped relay must name the repair:\n%s", out)
	}
	if out := mustRun(t, ExitError, "--config", alphaConf, "repair"); !strings.Contains(out, "--keys EXPORT") {
		t.Fatalf("repair without --keys or --new must say what to give:\n%s", out)
	}
	t.Setenv("ESCALE_KEYS_PASSPHRASE", "not the passphrase")
	if out := mustRun(t, ExitError, "--config", alphaConf, "repair", "--keys", export); !strings.Contains(out, "wrong passphrase") {
		t.Fatalf("a wrong export passphrase must be named:\n%s", out)
	}
	t.Setenv("ESCALE_KEYS_PASSPHRASE", "export passphrase for the test")
	writeFiles(t, alpha, 5) // two more files, made while the relay was gone
	mustRun(t, ExitOK, "--config", alphaConf, "repair", "--keys", export)
	mustRun(t, ExitOK, "--config", betaConf, "sync", "--once")
	sameFiles(t, beta, alpha, 5)
}
