package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/escale-sync/escale/pkg/config"
)

func runEscale(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(append([]string{"escale"}, args...), strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// writeConfig writes a configuration with a passphrase file next to it.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pass"), []byte("s3cret words\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "escale.toml")
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

const goodConfig = `
log_level = "debug"
max_poll = "10m"

[repository.work]
path = "work"
relay = "remote:work"
client = "laptop"
passphrase_file = "pass"
exclude = ["*.tmp", "/^~/"]
quota = "2GB"

[repository.notes]
path = "/srv/notes"
relay = ":sftp,host=example.org:notes"
client = "laptop"
encryption = "none"
index = "hash:16"
`

func TestConfigCheckPrintsEffectiveSettings(t *testing.T) {
	f := writeConfig(t, goodConfig)
	code, stdout, stderr := runEscale(t, "--config", f, "config", "check")
	if code != ExitOK || stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	dir := filepath.Dir(f)
	for _, want := range []string{
		"# configuration: " + f,
		"[repository.notes]",
		"[repository.work]",
		`path = "` + filepath.Join(dir, "work") + `"`,
		`passphrase_file = "` + filepath.Join(dir, "pass") + `"`,
		`quota = "2GB"`,
		`index = "hash:16"`,
		`mode = "shared"`,
		"# key: passphrase file " + filepath.Join(dir, "pass"),
		"# key: none (no encryption)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if !regexpMatch(`(?m)^mode = "shared" +# default$`, stdout) || !regexpMatch(`(?m)^log_level = "debug"$`, stdout) ||
		!regexpMatch(`(?m)^max_poll = "10m" +# inherited from the top level$`, stdout) {
		t.Errorf("defaults must be marked, set values not:\n%s", stdout)
	}
	if strings.Contains(stdout, "s3cret") {
		t.Errorf("the passphrase leaked into the output:\n%s", stdout)
	}
	if strings.Index(stdout, "[repository.notes]") > strings.Index(stdout, "[repository.work]") {
		t.Errorf("repositories are not sorted by name")
	}

	// The output is a configuration that loads to the same settings.
	want, err := config.Load(config.LoadOptions{Path: f})
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.Parse(f, []byte(stdout), config.LoadOptions{})
	if err != nil {
		t.Fatalf("printed configuration does not load: %v\n%s", err, stdout)
	}
	wantJSON, _ := json.Marshal(want)
	gotJSON, _ := json.Marshal(got)
	if !bytes.Equal(wantJSON, gotJSON) {
		t.Errorf("printed configuration loads differently:\n got %s\nwant %s", gotJSON, wantJSON)
	}
}

func TestConfigCheckJSON(t *testing.T) {
	f := writeConfig(t, goodConfig)
	code, stdout, stderr := runEscale(t, "--config", f, "config", "check", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	var got struct {
		File         string `json:"file"`
		LogLevel     string `json:"log_level"`
		Repositories []struct {
			Name           string   `json:"name"`
			Quota          int64    `json:"quota"`
			MaxPoll        string   `json:"max_poll"`
			Index          string   `json:"index"`
			Exclude        []string `json:"exclude"`
			PassphraseFile string   `json:"passphrase_file"`
		} `json:"repositories"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if got.File != f || got.LogLevel != "debug" || len(got.Repositories) != 2 {
		t.Fatalf("JSON = %+v", got)
	}
	notes, work := got.Repositories[0], got.Repositories[1]
	if notes.Name != "notes" || notes.Index != "hash:16" || notes.MaxPoll != "10m" || notes.Exclude == nil {
		t.Errorf("notes = %+v", notes)
	}
	if work.Quota != 2e9 || work.PassphraseFile != filepath.Join(filepath.Dir(f), "pass") || len(work.Exclude) != 2 {
		t.Errorf("work = %+v", work)
	}
	if strings.Contains(stdout, "s3cret") {
		t.Error("the passphrase leaked into the JSON")
	}
}

func TestConfigCheckReportsEveryProblem(t *testing.T) {
	f := writeConfig(t, `
log_level = "loud"
[repository.work]
path = "/w"
relay = "r:w"
puller = 2
quota = "2 giga"
refresh = "1m"
max_poll = "2m"
`)
	code, stdout, stderr := runEscale(t, "--config", f, "config", "check")
	if code != ExitError || stdout != "" {
		t.Fatalf("exit %d, stdout %q", code, stdout)
	}
	for _, want := range []string{
		f + `: log_level: "loud" is not a log level`,
		f + `: repository.work.puller: unknown key; did you mean "pullers"?`,
		f + `: repository.work.quota: "2 giga" is not a size; use a number with KB, MB, GB, KiB, MiB or GiB`,
		f + `: repository.work.refresh: refresh is an alias of max_poll and both are set`,
		"escale: 4 problems in the configuration",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestConfigCheckSyntaxAndMissing(t *testing.T) {
	f := writeConfig(t, "[repository.work]\npath = /w\n")
	code, _, stderr := runEscale(t, "--config", f, "config", "check")
	if code != ExitError || !strings.Contains(stderr, f+":2:8: syntax error") {
		t.Errorf("syntax error: exit %d, stderr:\n%s", code, stderr)
	}

	missing := filepath.Join(t.TempDir(), "nope.toml")
	code, _, stderr = runEscale(t, "--config", missing, "config", "check")
	if code != ExitError || !strings.Contains(stderr, missing+" does not exist") || !strings.Contains(stderr, "escale --config "+missing+" init") {
		t.Errorf("missing file: exit %d, stderr:\n%s", code, stderr)
	}

	// A passphrase file that is named but absent is caught before a sync needs it.
	f = writeConfig(t, "[repository.work]\npath = \"/w\"\nrelay = \"r:w\"\nclient = \"c\"\npassphrase_file = \"absent\"\n")
	code, stdout, stderr := runEscale(t, "--config", f, "config", "check")
	if code != ExitError || stdout != "" || !strings.Contains(stderr, "repository.work.passphrase_file: "+filepath.Join(filepath.Dir(f), "absent")+" does not exist") {
		t.Errorf("absent key file: exit %d, stderr:\n%s", code, stderr)
	}
}

func TestConfigCheckHonoursEscaleConfig(t *testing.T) {
	f := writeConfig(t, goodConfig)
	t.Setenv("ESCALE_CONFIG", f)
	t.Setenv("ESCALE_LOG_LEVEL", "warn")
	code, stdout, stderr := runEscale(t, "config", "check")
	if code != ExitOK || !strings.Contains(stdout, "# configuration: "+f) {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !regexpMatch(`(?m)^log_level = "warn" +# from ESCALE_LOG_LEVEL$`, stdout) {
		t.Errorf("environment override not shown:\n%s", stdout)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
