package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rclone/rclone/fs/config/obscure"
	"github.com/rclone/rclone/fs/fspath"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/storage/testserver"
)

// runEscaleInput runs escale with a script of answers on standard input.
func runEscaleInput(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(append([]string{"escale"}, args...), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// initHome gives the test a home of its own, so defaults (state_dir,
// rclone.conf) never reach the real user's files.
func initHome(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	home := filepath.Join(root, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("RCLONE_CONFIG", "")
	t.Setenv("ESCALE_CONFIG", "")
	t.Setenv("ESCALE_PASSPHRASE", "")
	return root
}

// The wizard driven by a script: help, bad answers asked again, a folder
// and a relay created on request, a generated passphrase; the result loads,
// passes `config check`, and syncs with a second client set up by flags.
func TestInitWizardEndToEnd(t *testing.T) {
	root := initHome(t)
	t.Chdir(root)
	conf := filepath.Join(root, "alpha", "escale.toml")
	answers := strings.Join([]string{
		"bad name!", // refused
		"?",         // help, then asked again
		"docs",
		"folder-a", // missing: offered
		"",         // yes, create it
		"1",        // no remote in rclone.conf: explained, asked again
		"3",
		"relay",
		"", // create it
		"alpha",
		"?",
		"", // generate a passphrase
		"?",
		"conservatif", // not a mode
		"shared",
		"-1", // not a count
		"2",
		"lots", // not a size
		"2GB",
		"y", // test the relay
	}, "\n") + "\n"
	code, out, errOut := runEscaleInput(t, answers, "--config", conf, "init")
	if code != ExitOK {
		t.Fatalf("init: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{
		`"bad name!": use only letters, digits, - and _`,
		"A short name for this synced folder",
		"folder-a does not exist. Create it?",
		"rclone.conf has no remote: choose 2",
		"shared: send changes made here",
		`"conservatif" is not a mode`,
		`"-1": give a whole number`,
		`"lots" is not a size: write a number with a unit, e.g. 500MB`,
		"The relay only sees encrypted data",
		"the relay works with escale",
		"sync --once",
		"systemctl --user enable --now escale",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the transcript lacks %q:\n%s", want, out)
		}
	}
	if errOut != "" {
		t.Errorf("unexpected standard error: %s", errOut)
	}

	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(conf, data, config.LoadOptions{})
	if err != nil {
		t.Fatalf("the written configuration does not load: %v\n%s", err, data)
	}
	r := cfg.Repositories[0]
	pass := filepath.Join(root, "alpha", "docs.passphrase")
	if r.Name != "docs" || r.Path != filepath.Join(root, "folder-a") || r.Relay != filepath.Join(root, "relay") ||
		r.Client != "alpha" || r.Mode != config.ModeShared || r.Pullers != 2 || r.Quota != 2_000_000_000 || r.PassphraseFile != pass {
		t.Errorf("repository as loaded: %+v", r)
	}
	if !strings.Contains(string(data), "# The local folder kept in sync.") {
		t.Errorf("the file is not commented:\n%s", data)
	}
	st, err := os.Stat(pass)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("passphrase file mode %v, want 0600", st.Mode().Perm())
	}
	if code, out, errOut := runEscale(t, "--config", conf, "config", "check"); code != ExitOK {
		t.Fatalf("config check: exit %d\n%s%s", code, out, errOut)
	}

	// A second client joins with the same passphrase, set up by flags. Its
	// repository has another local name: both share this test's state_dir.
	if err := os.MkdirAll(filepath.Join(root, "folder-b"), 0o755); err != nil {
		t.Fatal(err)
	}
	betaConf := filepath.Join(root, "beta", "escale.toml")
	code, out, errOut = runEscale(t, "--config", betaConf, "init", "--non-interactive", "--repo", "docs-b",
		"--path", "folder-b", "--relay", "relay", "--client", "beta", "--passphrase-file", pass)
	if code != ExitOK {
		t.Fatalf("init --non-interactive: exit %d\n%s%s", code, out, errOut)
	}
	if err := os.WriteFile(filepath.Join(root, "folder-a", "hello.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runEscale(t, "--config", conf, "sync", "--once"); code != ExitOK || !strings.Contains(out, "pushed 1") {
		t.Fatalf("alpha sync: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runEscale(t, "--config", betaConf, "sync", "--once"); code != ExitOK || !strings.Contains(out, "pulled 1") {
		t.Fatalf("beta sync: exit %d\n%s%s", code, out, errOut)
	}
	if got, err := os.ReadFile(filepath.Join(root, "folder-b", "hello.txt")); err != nil || string(got) != "hello" {
		t.Fatalf("beta's copy: %q, %v", got, err)
	}
}

func TestInitNonInteractiveErrors(t *testing.T) {
	root := initHome(t)
	conf := filepath.Join(root, "escale.toml")
	folder := filepath.Join(root, "folder")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--non-interactive needs --repo, --path, --relay, --client, one of --passphrase-file, --key-file, --generate-passphrase"},
		{[]string{"--repo", "r", "--path", folder, "--relay", "x:y", "--generate-passphrase"}, "needs --client"},
		{[]string{"--repo", "r", "--path", folder + "/nope", "--relay", "x:y", "--client", "c", "--generate-passphrase"}, "is not a folder; create it first"},
		{[]string{"--repo", "r", "--path", folder, "--relay", "x:y", "--client", "c", "--generate-passphrase", "--mode", "both"}, `--mode "both" is not a mode`},
		{[]string{"--repo", "r", "--path", folder, "--relay", "x:y", "--client", "c", "--generate-passphrase", "--quota", "big"}, `--quota "big" is not a size`},
		{[]string{"--repo", "r", "--path", folder, "--relay", "x:y", "--client", "c", "--generate-passphrase", "--no-encryption"}, "give only one of"},
		{[]string{"--repo", "r", "--path", folder, "--relay", "x:y", "--client", "c", "--key-file", root + "/none"}, "--key-file " + root + "/none is not a file"},
		// config's own checks run before anything is written.
		{[]string{"--repo", "r", "--path", folder, "--relay", folder + "/inside", "--client", "c", "--no-encryption"}, "nothing was written"},
	} {
		code, out, errOut := runEscale(t, append([]string{"--config", conf, "init", "--non-interactive"}, tc.args...)...)
		if code != ExitError || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, want 1 and %q\n%s%s", tc.args, code, tc.want, out, errOut)
		}
	}
	if _, err := os.Stat(conf); !os.IsNotExist(err) {
		t.Errorf("a failed init wrote %s (%v)", conf, err)
	}
	if _, err := os.Stat(filepath.Join(root, "r.passphrase")); !os.IsNotExist(err) {
		t.Errorf("a failed init generated a passphrase (%v)", err)
	}
}

// An existing file gets the new repository appended; the same name is
// refused; --force replaces the file and keeps the old one as .bak.
func TestInitAppendsAndForce(t *testing.T) {
	root := initHome(t)
	conf := filepath.Join(root, "escale.toml")
	for _, d := range []string{"a", "b"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	first := "# my own notes\nlog_level = \"warn\"\n\n[repository.a]\npath = \"a\"\nrelay = \"relay-a\"\nencryption = \"none\""
	if err := os.WriteFile(conf, []byte(first), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", conf, "init", "-y", "--path", filepath.Join(root, "b"), "--relay", filepath.Join(root, "relay-b"), "--client", "c", "--generate-passphrase"}
	code, out, errOut := runEscale(t, append(args, "--repo", "a")...)
	if code != ExitError || !strings.Contains(errOut, "already has [repository.a]; choose another name, or add --force") {
		t.Fatalf("same name: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runEscale(t, append(args, "--repo", "b")...); code != ExitOK {
		t.Fatalf("append: exit %d\n%s%s", code, out, errOut)
	}
	data, _ := os.ReadFile(conf)
	if !strings.HasPrefix(string(data), first+"\n") {
		t.Errorf("the existing content changed:\n%s", data)
	}
	cfg, err := config.Parse(conf, data, config.LoadOptions{})
	if err != nil {
		t.Fatalf("appended file does not load: %v\n%s", err, data)
	}
	if len(cfg.Repositories) != 2 || cfg.LogLevel != "warn" || cfg.Repositories[1].PassphraseFile != filepath.Join(root, "b.passphrase") {
		t.Errorf("loaded: %+v", cfg)
	}

	// --force: a fresh file with repository a only; the old one kept.
	code, out, errOut = runEscale(t, "--config", conf, "init", "-y", "--force", "--repo", "a", "--path", filepath.Join(root, "a"),
		"--relay", filepath.Join(root, "relay-a"), "--client", "c", "--no-encryption")
	if code != ExitOK || !strings.Contains(out, "kept the old configuration as "+conf+".bak") {
		t.Fatalf("--force: exit %d\n%s%s", code, out, errOut)
	}
	if bak, _ := os.ReadFile(conf + ".bak"); !bytes.Equal(bak, data) {
		t.Errorf(".bak differs from the replaced file")
	}
	cfg, err = config.Load(config.LoadOptions{Path: conf})
	if err != nil || len(cfg.Repositories) != 1 || cfg.Repositories[0].Encryption != config.EncryptionNone {
		t.Fatalf("after --force: %+v, %v", cfg, err)
	}
}

// Choice 2 creates a WebDAV remote in rclone.conf: the password is stored
// obscured there, never in escale's file, and the relay test passes on it.
func TestInitWizardCreatesRemote(t *testing.T) {
	root := initHome(t)
	srv := testserver.RcloneWebDAV(t)
	parsed, err := fspath.Parse(srv.Spec)
	if err != nil {
		t.Fatal(err)
	}
	pass, err := obscure.Reveal(parsed.Config["pass"])
	if err != nil {
		t.Fatal(err)
	}
	rcloneConf := filepath.Join(root, "rclone.conf")
	conf := filepath.Join(root, "escale.toml")
	answers := strings.Join([]string{
		"dav", filepath.Join(root, "folder"), "",
		"2",
		"dropbox",    // needs a browser: explained, asked again
		"webdav", "", // remote name: default dav-relay
		parsed.Config["url"], "rclone", parsed.Config["user"], pass,
		parsed.Path, // folder on the remote
		"alpha", "4", "", "", "",
		"y",
	}, "\n") + "\n"
	code, out, errOut := runEscaleInput(t, answers, "--config", conf, "init", "--rclone-config", rcloneConf)
	if code != ExitOK {
		t.Fatalf("init: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"signs in through a browser: run `rclone config`", "saved remote dav-relay in " + rcloneConf, "the relay works with escale"} {
		if !strings.Contains(out, want) {
			t.Errorf("the transcript lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, pass) {
		t.Errorf("the transcript shows the password")
	}
	rc, _ := os.ReadFile(rcloneConf)
	if !strings.Contains(string(rc), "[dav-relay]") || strings.Contains(string(rc), pass) {
		t.Errorf("rclone.conf should hold the remote with its password obscured:\n%s", rc)
	}
	data, _ := os.ReadFile(conf)
	if strings.Contains(string(data), pass) {
		t.Errorf("escale's configuration holds the password:\n%s", data)
	}
	cfg, err := config.Parse(conf, data, config.LoadOptions{})
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if cfg.RcloneConfig != rcloneConf || cfg.Repositories[0].Relay != "dav-relay:"+parsed.Path {
		t.Errorf("loaded: rclone_config %q, relay %q", cfg.RcloneConfig, cfg.Repositories[0].Relay)
	}
}

// Answers that end early write nothing and say how to script init.
func TestInitWizardInputEnds(t *testing.T) {
	root := initHome(t)
	conf := filepath.Join(root, "escale.toml")
	code, _, errOut := runEscaleInput(t, "docs\n", "--config", conf, "init")
	if code != ExitError || !strings.Contains(errOut, "standard input ended before the last question; nothing was written") {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(conf); !os.IsNotExist(err) {
		t.Errorf("wrote %s (%v)", conf, err)
	}
}
