package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/escale-sync/escale/pkg/envelope"
)

// keyConfig writes a configuration for client name on relay with one key
// setting (passphrase_file or key_file).
func keyConfig(t *testing.T, root, relay, name, keySetting string) string {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Join(dir, "folder"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "escale.toml")
	body := fmt.Sprintf("state_dir = %q\n[repository.r]\npath = %q\nrelay = %q\nclient = %q\n%s\n",
		filepath.Join(dir, "state"), filepath.Join(dir, "folder"), relay, name, keySetting)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}

func TestKeyCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real scrypt and relay locks (several seconds)")
	}
	t.Setenv("ESCALE_PASSPHRASE", "")
	t.Setenv(newPassphraseEnv, "")
	root := t.TempDir()
	relay := filepath.Join(root, "relay")
	if err := os.MkdirAll(relay, 0o755); err != nil {
		t.Fatal(err)
	}
	passFile := filepath.Join(root, "secrets", "alpha.pass")
	alpha := keyConfig(t, root, relay, "alpha", fmt.Sprintf("passphrase_file = %q", passFile))

	// init generates the missing passphrase file and says where.
	code, out, errOut := runEscale(t, "--config", alpha, "key", "init")
	if code != ExitOK || !strings.Contains(out, passFile) {
		t.Fatalf("key init: exit %d\n%s%s", code, out, errOut)
	}
	st, err := os.Stat(passFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("generated passphrase file: %v, %v", st, err)
	}
	pass, _ := os.ReadFile(passFile)
	if p := strings.TrimSpace(string(pass)); len(strings.ReplaceAll(p, "-", "")) < 32 || strings.Contains(out, p) {
		t.Fatalf("generated passphrase %q is short or was printed", p)
	}
	if code, _, errOut := runEscale(t, "--config", alpha, "key", "init"); code != ExitError || !strings.Contains(errOut, "already holds a repository") {
		t.Fatalf("second init: exit %d\n%s", code, errOut)
	}

	// add an age identity for beta; beta lists the slots with it.
	betaID, _ := age.GenerateX25519Identity()
	betaKey := filepath.Join(root, "secrets", "beta.key")
	if err := os.WriteFile(betaKey, []byte(betaID.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	beta := keyConfig(t, root, relay, "beta", fmt.Sprintf("key_file = %q", betaKey))
	if code, out, errOut := runEscale(t, "--config", alpha, "key", "add", "--identity", betaKey, "--label", "beta laptop"); code != ExitOK || !strings.Contains(out, "added identity key slot") {
		t.Fatalf("key add: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runEscale(t, "--config", beta, "key", "list")
	if code != ExitOK || !strings.Contains(out, "beta laptop") || !strings.Contains(out, "initial passphrase") || !strings.Contains(out, "key epochs 1 ") {
		t.Fatalf("key list: exit %d\n%s%s", code, out, errOut)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "beta laptop") != strings.Contains(line, "(this client)") && strings.Contains(line, "identity") {
			t.Fatalf("key list marks the wrong slot as this client's:\n%s", out)
		}
	}
	if strings.Contains(out, "AGE-SECRET-KEY") || strings.Contains(out, strings.TrimSpace(string(pass))) {
		t.Fatalf("key list printed a secret:\n%s", out)
	}

	// alpha removes beta's key and rotates; beta is then told it was removed.
	code, out, errOut = runEscale(t, "--config", alpha, "key", "remove", "--rotate", "beta laptop")
	if code != ExitOK || !strings.Contains(out, "removed key slot") || !strings.Contains(out, "key epoch 2 started") {
		t.Fatalf("key remove --rotate: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runEscale(t, "--config", beta, "sync", "--once"); code != ExitError || !strings.Contains(errOut, "this client's key was removed from the repository") {
		t.Fatalf("removed client's sync: exit %d\n%s", code, errOut)
	}

	// prune drops epoch 1: no object uses it (beta's records, if it ever
	// ran, go with --forget; alpha cannot forget itself).
	if code, _, errOut := runEscale(t, "--config", alpha, "key", "prune", "--forget", "alpha"); code != ExitError || !strings.Contains(errOut, "cannot forget itself") {
		t.Fatalf("key prune --forget self: exit %d\n%s", code, errOut)
	}
	if code, out, errOut := runEscale(t, "--config", alpha, "key", "prune", "--forget", "beta"); code != ExitOK || !strings.Contains(out, "forgot client beta") || !strings.Contains(out, "dropped key epochs 1") {
		t.Fatalf("key prune: exit %d\n%s%s", code, out, errOut)
	}

	// export: a new passphrase, a 0600 file that age opens, never overwritten.
	exp := filepath.Join(root, "backup", "keys.age")
	expPass := filepath.Join(root, "backup", "keys.pass")
	if code, out, errOut := runEscale(t, "--config", alpha, "key", "export", "--generate", expPass, exp); code != ExitOK || !strings.Contains(out, exp) {
		t.Fatalf("key export: exit %d\n%s%s", code, out, errOut)
	}
	if st, err := os.Stat(exp); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v, %v", st, err)
	}
	data, _ := os.ReadFile(exp)
	p, _ := os.ReadFile(expPass)
	id, _ := envelope.PassphraseIdentity(strings.TrimSpace(string(p)))
	krs, err := envelope.Unwrap(data, id)
	if err != nil {
		t.Fatalf("the export does not open with its passphrase: %v", err)
	}
	var epochs []uint32
	for _, k := range krs {
		epochs = append(epochs, k.Epoch)
	}
	if !slices.Equal(epochs, []uint32{2}) {
		t.Fatalf("export holds epochs %v, want [2]", epochs)
	}
	if code, _, errOut := runEscale(t, "--config", alpha, "key", "export", "--passphrase-file", expPass, exp); code != ExitError || !strings.Contains(errOut, "never overwrites") {
		t.Fatalf("export over an existing file: exit %d\n%s", code, errOut)
	}
}

func TestKeyNeedsEncryption(t *testing.T) {
	root := t.TempDir()
	conf := keyConfig(t, root, filepath.Join(root, "relay"), "alpha", `encryption = "none"`)
	if code, _, errOut := runEscale(t, "--config", conf, "key", "list"); code != ExitError || !strings.Contains(errOut, "encryption = none") {
		t.Fatalf("key list on a plain repository: exit %d\n%s", code, errOut)
	}
}

func TestGeneratedPassphrasesDiffer(t *testing.T) {
	a, err := generatePassphrase()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := generatePassphrase()
	if a == b || len(strings.ReplaceAll(a, "-", "")) != 32 {
		t.Fatalf("generated %q and %q", a, b)
	}
}
