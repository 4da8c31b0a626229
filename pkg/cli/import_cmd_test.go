package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escale-sync/escale/pkg/config"
)

const oldConfig = `# the original escale's configuration
log level = DEBUG

[documents]
local path = /home/alice/Documents
host address = /mnt/usb
relay dir = escale
encryption = on
passphrase = open sesame
checksum = sha512
`

func TestImportConfig(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "escale.conf")
	if err := os.WriteFile(old, []byte(oldConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "new", "escale.toml")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runEscale(t, "import-config", old, "-o", out)
	if code != ExitOK || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	pass := filepath.Join(dir, "new", "documents.passphrase")
	if !strings.Contains(stderr, "wrote "+pass+" (mode 0600)") || !strings.Contains(stderr, "escale.conf:10: [documents] checksum: no equivalent") {
		t.Errorf("stderr:\n%s", stderr)
	}
	st, err := os.Stat(pass)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("passphrase file: %v %v", st, err)
	}
	if data, _ := os.ReadFile(pass); string(data) != "open sesame\n" {
		t.Errorf("passphrase file holds %q", data)
	}
	// escale config check accepts the result, key file included.
	code, stdout, stderr = runEscale(t, "--config", out, "config", "check")
	if code != ExitOK || !strings.Contains(stdout, `relay = "/mnt/usb/escale"`) {
		t.Fatalf("config check: exit %d\n%s\n%s", code, stdout, stderr)
	}
	toml, _ := os.ReadFile(out)
	if strings.Contains(string(toml), "open sesame") {
		t.Errorf("the passphrase is in the TOML:\n%s", toml)
	}
	cfg, err := config.Parse(out, toml, config.LoadOptions{Home: dir, Getenv: func(string) string { return "" }})
	if err != nil || cfg.LogLevel != "debug" || cfg.Repository("documents").PassphraseFile != pass {
		t.Errorf("loaded: %+v, %v", cfg, err)
	}

	// An existing output is kept unless --force; to standard output the
	// TOML goes to stdout and the notes to stderr.
	if code, _, stderr := runEscale(t, "import-config", old, "-o", out); code != ExitError || !strings.Contains(stderr, "add --force") {
		t.Errorf("overwrite without --force: exit %d\n%s", code, stderr)
	}
	wd, _ := os.Getwd()
	t.Cleanup(func() { _ = os.Chdir(wd) })
	if err := os.Chdir(filepath.Join(dir, "new")); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runEscale(t, "import-config", old)
	if code != ExitOK || !strings.Contains(stdout, "[repository.documents]") || !strings.Contains(stdout, "no equivalent: escale checks") {
		t.Errorf("to stdout: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// A bad value names the file and the line.
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("[a]\nlocal path = /a\naddress = /r\ndisk quota = lots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runEscale(t, "import-config", bad)
	if code != ExitError || !strings.Contains(stderr, bad+`:4: disk quota = lots: "lots" is not a size`) {
		t.Errorf("bad value: exit %d\n%s", code, stderr)
	}
}
