package config

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env is an injected environment.
type env map[string]string

func (e env) get(k string) string { return e[k] }
func (e env) list() []string {
	var l []string
	for k, v := range e {
		l = append(l, k+"="+v)
	}
	return l
}

// testOpts gives options that read nothing of the real user: a temporary
// home, the given environment and a fixed host name.
func testOpts(t *testing.T, e env) LoadOptions {
	t.Helper()
	return LoadOptions{
		Getenv:   e.get,
		Environ:  e.list,
		Home:     t.TempDir(),
		Hostname: func() (string, error) { return "test-host", nil },
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

const minimal = `
[repository.work]
path = "/data/work"
relay = "remote:work"
`

// problems parses data and returns its problems, failing if it loads.
func problems(t *testing.T, data string, o LoadOptions) []Problem {
	t.Helper()
	cfg, err := Parse("/etc/test/escale.toml", []byte(data), o)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Parse succeeded (%v, %+v), want a ValidationError for:\n%s", err, cfg, data)
	}
	return ve.Problems
}

func TestSearchOrder(t *testing.T) {
	home := t.TempDir()
	xdg := t.TempDir()
	named := filepath.Join(t.TempDir(), "named.toml")
	fromEnv := filepath.Join(t.TempDir(), "env.toml")
	homeDefault := filepath.Join(home, ".config", "escale", "escale.toml")
	xdgFile := filepath.Join(xdg, "escale", "escale.toml")
	for _, p := range []string{named, fromEnv, homeDefault, xdgFile} {
		writeFile(t, p, minimal)
	}
	cases := []struct {
		name string
		path string
		env  env
		want string
	}{
		{"flag wins over everything", named, env{"ESCALE_CONFIG": fromEnv, "XDG_CONFIG_HOME": xdg}, named},
		{"ESCALE_CONFIG next", "", env{"ESCALE_CONFIG": fromEnv, "XDG_CONFIG_HOME": xdg}, fromEnv},
		{"XDG_CONFIG_HOME next", "", env{"XDG_CONFIG_HOME": xdg}, xdgFile},
		{"then ~/.config", "", env{}, homeDefault},
		{"relative XDG_CONFIG_HOME is ignored", "", env{"XDG_CONFIG_HOME": "rel"}, homeDefault},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := LoadOptions{Path: c.path, Getenv: c.env.get, Home: home, Hostname: func() (string, error) { return "h", nil }}
			cfg, err := Load(o)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.File != c.want {
				t.Errorf("loaded %s, want %s", cfg.File, c.want)
			}
		})
	}

	t.Run("HOME from the injected environment", func(t *testing.T) {
		cfg, err := Load(LoadOptions{Getenv: env{"HOME": home}.get, Hostname: func() (string, error) { return "h", nil }})
		if err != nil || cfg.File != homeDefault {
			t.Fatalf("Load = %v, %v; want %s", cfg, err, homeDefault)
		}
	})

	t.Run("~ in the named path", func(t *testing.T) {
		cfg, err := Load(LoadOptions{Path: "~/.config/escale/escale.toml", Getenv: env{}.get, Home: home})
		if err != nil || cfg.File != homeDefault {
			t.Fatalf("Load = %v, %v; want %s", cfg, err, homeDefault)
		}
	})

	t.Run("missing named file does not fall back", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope.toml")
		for _, o := range []LoadOptions{
			{Path: missing, Getenv: env{}.get, Home: home},
			{Getenv: env{"ESCALE_CONFIG": missing}.get, Home: home},
		} {
			_, err := Load(o)
			var nf *NotFoundError
			if !errors.As(err, &nf) || !nf.Explicit || !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Load = %v, want an explicit NotFoundError", err)
			}
			if !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "escale --config "+missing+" init") {
				t.Errorf("message %q should name the file and how to write it", err)
			}
		}
	})

	t.Run("nothing found lists the places", func(t *testing.T) {
		if _, err := os.Stat("/etc/escale/escale.toml"); err == nil {
			t.Skip("this machine has /etc/escale/escale.toml")
		}
		emptyHome := t.TempDir()
		_, err := Load(LoadOptions{Getenv: env{"XDG_CONFIG_HOME": xdg + "-none"}.get, Home: emptyHome})
		var nf *NotFoundError
		if !errors.As(err, &nf) || nf.Explicit {
			t.Fatalf("Load = %v, want a NotFoundError", err)
		}
		want := []string{filepath.Join(xdg+"-none", "escale", "escale.toml"), "/etc/escale/escale.toml"}
		if !reflect.DeepEqual(nf.Searched, want) {
			t.Errorf("searched %q, want %q", nf.Searched, want)
		}
		for _, s := range append(want, "escale init") {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("message %q lacks %q", err, s)
			}
		}
	})
}

func TestDefaults(t *testing.T) {
	o := testOpts(t, env{})
	o.Hostname = func() (string, error) { return "My Laptop!", nil }
	cfg, err := Parse("/etc/test/escale.toml", []byte(minimal), o)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != "/etc/test/escale.toml" {
		t.Errorf("File = %q", cfg.File)
	}
	if want := filepath.Join(o.Home, ".local", "state", "escale"); cfg.StateDir != want {
		t.Errorf("StateDir = %q, want %q", cfg.StateDir, want)
	}
	if cfg.RcloneConfig != "" || cfg.LogFile != "" || cfg.MetricsAddress != "" || cfg.LogLevel != "info" {
		t.Errorf("globals = %+v", cfg)
	}
	if cfg.LogRotate != (LogRotate{Size: 10_000_000, Keep: 5}) {
		t.Errorf("LogRotate = %+v", cfg.LogRotate)
	}
	if cfg.Origin("log_level") != "default" || cfg.Origin("state_dir") != "default" {
		t.Errorf("origins: %v", cfg.origin)
	}
	if len(cfg.Repositories) != 1 {
		t.Fatalf("repositories: %+v", cfg.Repositories)
	}
	r := cfg.Repositories[0]
	want := Repository{
		Name: "work", Path: "/data/work", Relay: "remote:work", Client: "My-Laptop-", Mode: ModeShared,
		PullerTimeout: 30 * 24 * time.Hour, Encryption: "age", MaxPackSize: 16 << 20,
		MinPoll: 5 * time.Second, MaxPoll: 5 * time.Minute, LockTimeout: 10 * time.Minute, MaxDelete: 50,
	}
	got := r
	got.origin = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("repository =\n%+v\nwant\n%+v", got, want)
	}
	if r.Origin("path") != "" || r.Origin("mode") != "default" || r.Origin("client") != "default" {
		t.Errorf("origins: %v", r.origin)
	}
	if cfg.Repository("work") == nil || cfg.Repository("other") != nil {
		t.Error("Config.Repository lookup")
	}

	// XDG_STATE_HOME moves the default state folder.
	o = testOpts(t, env{"XDG_STATE_HOME": "/xdg/state"})
	cfg, err = Parse("/etc/test/escale.toml", []byte(minimal), o)
	if err != nil || cfg.StateDir != "/xdg/state/escale" {
		t.Errorf("StateDir with XDG_STATE_HOME = %v, %v", cfg, err)
	}
}

func TestEnvOverrides(t *testing.T) {
	file := `
log_level = "info"
state_dir = "state"
log_rotate = "50MB"
` + minimal
	e := env{
		"ESCALE_LOG_LEVEL":       "debug",
		"ESCALE_STATE_DIR":       "/override/state",
		"ESCALE_LOG_FILE":        "/var/log/escale.log",
		"ESCALE_LOG_ROTATE":      "off",
		"ESCALE_METRICS_ADDRESS": ":9100",
		"ESCALE_RCLONE_CONFIG":   "",                // empty counts as unset
		"ESCALE_CONFIG":          "/ignored/here",   // not a key
		"ESCALE_PASSPHRASE":      "secret",          // not a key
		"ESCALE_REQUIRE_SERVERS": "1",               // someone else's
		"ESCALE_LOG_LEVL":        "debug",           // misspelt
		"ESCALE_MODE":            "upload",          // a repository key
		"XDG_STATE_HOME":         "/should/not/use", // state_dir is set
	}
	cfg, err := Parse("/etc/test/escale.toml", []byte(file), testOpts(t, e))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LogLevel != "debug" || cfg.StateDir != "/override/state" || cfg.LogFile != "/var/log/escale.log" ||
		cfg.LogRotate.Size != 0 || cfg.MetricsAddress != ":9100" || cfg.RcloneConfig != "" {
		t.Errorf("overrides not applied: %+v", cfg)
	}
	if got := cfg.Origin("log_level"); got != "environment ESCALE_LOG_LEVEL" {
		t.Errorf("Origin(log_level) = %q", got)
	}
	if cfg.Repositories[0].Mode != ModeShared {
		t.Errorf("ESCALE_MODE must not change a repository key")
	}
	joined := strings.Join(cfg.Warnings, "\n")
	if len(cfg.Warnings) != 2 || !strings.Contains(joined, "ESCALE_LOG_LEVL is ignored") || !strings.Contains(joined, "did you mean ESCALE_LOG_LEVEL?") ||
		!strings.Contains(joined, "ESCALE_MODE is ignored") {
		t.Errorf("warnings:\n%s", joined)
	}

	// A bad value from the environment names the variable, not the file.
	ps := problems(t, minimal, testOpts(t, env{"ESCALE_LOG_LEVEL": "loud"}))
	if len(ps) != 1 || ps[0].File != "environment" || ps[0].Key != "ESCALE_LOG_LEVEL" || !strings.Contains(ps[0].Msg, `"loud" is not a log level`) {
		t.Errorf("problems = %+v", ps)
	}
	// A relative path from the environment is taken from the working directory.
	wd, _ := os.Getwd()
	cfg, err = Parse("/etc/test/escale.toml", []byte(minimal), testOpts(t, env{"ESCALE_STATE_DIR": "rel"}))
	if err != nil || cfg.StateDir != filepath.Join(wd, "rel") {
		t.Errorf("relative ESCALE_STATE_DIR = %v, %v", cfg, err)
	}
}

func TestFullExample(t *testing.T) {
	path, err := filepath.Abs("testdata/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	o := testOpts(t, env{})
	o.Path = path
	cfg, err := Load(o)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	if cfg.StateDir != "/var/lib/escale" || cfg.RcloneConfig != filepath.Join(dir, "rclone.conf") ||
		cfg.LogFile != filepath.Join(o.Home, "escale.log") || cfg.LogLevel != "debug" || cfg.MetricsAddress != "127.0.0.1:9090" {
		t.Errorf("globals: %+v", cfg)
	}
	if want := (LogRotate{Size: 20_000_000, Keep: 3, MaxAge: 30 * 24 * time.Hour, Compress: true}); cfg.LogRotate != want {
		t.Errorf("LogRotate = %+v, want %+v", cfg.LogRotate, want)
	}
	var names []string
	for _, r := range cfg.Repositories {
		names = append(names, r.Name)
	}
	if !reflect.DeepEqual(names, []string{"notes", "photos", "work"}) {
		t.Fatalf("repositories %v, want them sorted", names)
	}
	notes, photos, work := cfg.Repositories[0], cfg.Repositories[1], cfg.Repositories[2]

	if work.Path != filepath.Join(o.Home, "Work") || work.Relay != "ftp-office:escale/work" || work.Client != "laptop" ||
		work.Mode != ModeShared || work.Pullers != 2 || work.PullerTimeout != 14*24*time.Hour || work.Quota != 2e9 ||
		work.Encryption != "age" || work.KeyFile != filepath.Join(o.Home, ".config/escale/work.key") || work.PassphraseFile != "" ||
		work.Index != (IndexSpec{"topdir", 2}) || work.MaxPackSize != 32<<20 || work.MinPoll != 2*time.Second ||
		work.MaxPoll != 10*time.Minute || work.LockTimeout != 15*time.Minute || work.MaxDelete != 20 {
		t.Errorf("work = %+v", work)
	}
	if !reflect.DeepEqual(work.Include, []string{"*"}) || !reflect.DeepEqual(work.Exclude, []string{"*.tmp", `/^~\$/`}) ||
		len(work.IncludeDirs) != 0 || !reflect.DeepEqual(work.ExcludeDirs, []string{"node_modules", ".git"}) {
		t.Errorf("work filters = %q %q %q %q", work.Include, work.Exclude, work.IncludeDirs, work.ExcludeDirs)
	}
	if work.Origin("max_poll") != "top level" || work.Origin("key_file") != "" || work.Origin("lock_timeout") != "" {
		t.Errorf("work origins = %v", work.origin)
	}
	if photos.Mode != ModeUpload || photos.MaxPoll != time.Hour || photos.Quota != 5e9 || photos.Client != "test-host" ||
		photos.PassphraseFile != filepath.Join(dir, "shared.passphrase") || photos.Relay != ":sftp,host=nas.example.org,user=escale:photos" ||
		!reflect.DeepEqual(photos.Extensions, []string{"jpg", "png"}) || photos.Index != (IndexSpec{}) {
		t.Errorf("photos = %+v", photos)
	}
	if notes.Path != filepath.Join(dir, "notes") || notes.Relay != "/mnt/usb/escale-notes" || notes.Encryption != "none" ||
		notes.PassphraseFile != "" || notes.KeyFile != "" {
		t.Errorf("notes = %+v", notes)
	}

	// The JSON form carries the same values, durations as strings.
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		LogRotate struct {
			MaxAge string `json:"max_age"`
			Size   int64  `json:"size"`
		} `json:"log_rotate"`
		Repositories []map[string]any `json:"repositories"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	w := back.Repositories[2]
	if back.LogRotate.MaxAge != "30d" || back.LogRotate.Size != 20_000_000 || w["puller_timeout"] != "14d" || w["index"] != "topdir:2" ||
		w["max_poll"] != "10m" || w["max_pack_size"] != float64(32<<20) || w["name"] != "work" {
		t.Errorf("JSON: %s", b)
	}
}

func TestInheritance(t *testing.T) {
	file := `
mode = "download"
max_delete = 10
exclude = ["*.bak"]
passphrase_file = "/keys/shared"

[repository.a]
path = "/a"
relay = "r:a"

[repository.b]
path = "/b"
relay = "r:b"
mode = "conservative"
exclude = []
key_file = "/keys/b.age"
`
	cfg, err := Parse("/etc/test/escale.toml", []byte(file), testOpts(t, env{}))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Repositories[0], cfg.Repositories[1]
	if a.Mode != ModeDownload || a.MaxDelete != 10 || !reflect.DeepEqual(a.Exclude, []string{"*.bak"}) || a.PassphraseFile != "/keys/shared" {
		t.Errorf("a = %+v", a)
	}
	if b.Mode != ModeConservative || b.MaxDelete != 10 || len(b.Exclude) != 0 || b.KeyFile != "/keys/b.age" || b.PassphraseFile != "" {
		t.Errorf("b = %+v", b)
	}
	if a.Origin("mode") != "top level" || b.Origin("mode") != "" {
		t.Errorf("origins a=%v b=%v", a.origin, b.origin)
	}
	// Each repository owns its lists.
	cfg.Repositories[0].Exclude[0] = "changed"
	cfg2, _ := Parse("/etc/test/escale.toml", []byte(file), testOpts(t, env{}))
	if cfg2.Repositories[0].Exclude[0] != "*.bak" {
		t.Error("lists are shared between loads")
	}
}

func TestValidationErrors(t *testing.T) {
	const repo = "[repository.work]\npath = \"/w\"\nrelay = \"r:w\"\n"
	cases := []struct {
		name, data, key, msg string
	}{
		{"unknown repository key", repo + "puller = 2\n", "repository.work.puller", `unknown key; did you mean "pullers"?`},
		{"unknown top-level table", "[repositories.work]\npath = \"/w\"\n", "repositories", `did you mean "repository"?`},
		{"unknown global key", "log_levle = \"info\"\n" + repo, "log_levle", `did you mean "log_level"?`},
		{"dashes for underscores", repo + "\"max-poll\" = \"1m\"\n", "repository.work.max-poll", `did you mean "max_poll"?`},
		{"original option name", repo + "maxpagesize = \"200MB\"\n", "repository.work.maxpagesize", `use "max_pack_size"`},
		{"inline passphrase", repo + "passphrase = \"hunter2\"\n", "repository.work.passphrase", `set "passphrase_file"`},
		{"nothing close", repo + "zzzzzzzz = 1\n", "repository.work.zzzzzzzz", "known keys here are client, encryption,"},
		{"bad size", repo + "quota = \"2 giga\"\n", "repository.work.quota", `"2 giga" is not a size; use a number with KB, MB, GB, KiB, MiB or GiB`},
		{"negative size", repo + "quota = -1\n", "repository.work.quota", "negative"},
		{"size as boolean", repo + "quota = true\n", "repository.work.quota", "got the boolean true"},
		{"bad duration", repo + "lock_timeout = \"10 minutes\"\n", "repository.work.lock_timeout", "is not a duration"},
		{"duration as number", repo + "min_poll = 5\n", "repository.work.min_poll", "expected a duration in quotes, got the number 5"},
		{"zero duration", repo + "puller_timeout = \"0\"\n", "repository.work.puller_timeout", "must be longer than 0"},
		{"missing path", "[repository.work]\nrelay = \"r:w\"\n", "repository.work.path", "missing"},
		{"missing relay", "[repository.work]\npath = \"/w\"\n", "repository.work.relay", "missing"},
		{"no repository", "log_level = \"info\"\n", "repository", "no repository is configured"},
		{"repository not a table", "repository = 3\n", "repository", "expected tables [repository.NAME]"},
		{"one repository not a table", "[repository]\nwork = \"x\"\n", "repository.work", "expected a table"},
		{"global key in a repository", repo + "log_level = \"debug\"\n", "repository.work.log_level", "is a global key; move it to the top"},
		{"path at top level", "path = \"/x\"\n" + repo, "path", "belongs in a [repository.NAME] table"},
		{"path not a string", "[repository.work]\npath = 5\nrelay = \"r:w\"\n", "repository.work.path", "got the number 5"},
		{"empty path", "[repository.work]\npath = \"\"\nrelay = \"r:w\"\n", "repository.work.path", "is empty"},
		{"~user path", "[repository.work]\npath = \"~bob/x\"\nrelay = \"r:w\"\n", "repository.work.path", `"~user" is not supported`},
		{"bad mode", repo + "mode = \"mirror\"\n", "repository.work.mode", `"mirror" is not a mode; use "shared", "upload", "download" or "conservative"`},
		{"bad encryption", repo + "encryption = \"aes\"\n", "repository.work.encryption", `use "age" or "none"`},
		{"both key files", repo + "passphrase_file = \"/p\"\nkey_file = \"/k\"\n", "repository.work.key_file", "both set"},
		{"both key files at top", "passphrase_file = \"/p\"\nkey_file = \"/k\"\n" + repo, "key_file", "both set"},
		{"key file without encryption", repo + "encryption = \"none\"\npassphrase_file = \"/p\"\n", "repository.work.encryption", `is "none" but a key file is set`},
		{"min_poll above max_poll", repo + "min_poll = \"10m\"\nmax_poll = \"1m\"\n", "repository.work.min_poll", "10m is longer than max_poll (1m)"},
		{"max_delete above 100", repo + "max_delete = 150\n", "repository.work.max_delete", "150 is not a percentage"},
		{"max_delete negative", repo + "max_delete = -1\n", "repository.work.max_delete", "-1 is not a percentage"},
		{"max_delete quoted", repo + "max_delete = \"50%\"\n", "repository.work.max_delete", "without quotes"},
		{"negative pullers", repo + "pullers = -1\n", "repository.work.pullers", "negative"},
		{"bad client", repo + "client = \"my laptop\"\n", "repository.work.client", "is not a valid name"},
		{"client starting with a dot", repo + "client = \"..\"\n", "repository.work.client", "is not a valid name"},
		{"bad repository name", "[repository.\"my work\"]\npath = \"/w\"\nrelay = \"r:w\"\n", "repository.my work", "is not valid"},
		{"dotted repository name", "[repository.\"a.b\"]\npath = \"/w\"\nrelay = \"r:w\"\n", "repository.a.b", "is not valid"},
		{"bad index", repo + "index = \"pages:3\"\n", "repository.work.index", "is not an index layout"},
		{"bad index number", repo + "index = \"hash:0\"\n", "repository.work.index", "N must be a whole number from 1 to 65536"},
		{"pack size too small", repo + "max_pack_size = \"1KB\"\n", "repository.work.max_pack_size", "out of range"},
		{"bad glob", repo + "exclude = [\"[abc\"]\n", "repository.work.exclude", "is not a valid glob"},
		{"bad regex", repo + "include = [\"/a(/\"]\n", "repository.work.include", "is not a valid regular expression"},
		{"list of numbers", repo + "include_dirs = [1]\n", "repository.work.include_dirs", "item 1: expected a string"},
		{"bad extension", repo + "extensions = [\"a/b\"]\n", "repository.work.extensions", "is not a file extension"},
		{"bad inline relay", "[repository.work]\npath = \"/w\"\nrelay = \":sftp\"\n", "repository.work.relay", "is not an inline rclone remote"},
		{"bad log level", "log_level = \"verbose\"\n" + repo, "log_level", `"verbose" is not a log level`},
		{"bad metrics address", "metrics_address = \"9090\"\n" + repo, "metrics_address", "is not a listening address"},
		{"tiny log rotation", "log_rotate = 3\n" + repo, "log_rotate", "too small"},
		{"unknown log_rotate key", "log_rotate = { sise = \"1MB\" }\n" + repo, "log_rotate.sise", `did you mean "size"?`},
		{"log_rotate as list", "log_rotate = [1]\n" + repo, "log_rotate", "expected a size, a boolean or a table"},
		{"refresh and max_poll", repo + "refresh = \"1m\"\nmax_poll = \"2m\"\n", "repository.work.refresh", "refresh is an alias of max_poll and both are set"},
		{"bad refresh", repo + "refresh = \"soon\"\n", "repository.work.refresh", "is not a duration"},
		{"same path", repo + "[repository.other]\npath = \"/w\"\nrelay = \"r:o\"\n", "repository.work.path", "is also the path of repository.other"},
		{"nested path", repo + "[repository.inner]\npath = \"/w/sub\"\nrelay = \"r:i\"\n", "repository.inner.path", "is inside repository.work.path"},
		{"same relay", repo + "[repository.other]\npath = \"/o\"\nrelay = \"r:w\"\n", "repository.work.relay", "is also the relay of repository.other"},
		{"relay inside a synced folder", "[repository.work]\npath = \"/w\"\nrelay = \"/w/relay\"\n", "repository.work.relay", "overlaps repository.work.path"},
		{"date value", repo + "quota = 2024-01-01\n", "repository.work.quota", "got a date or time"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ps := problems(t, c.data, testOpts(t, env{}))
			var found bool
			for _, p := range ps {
				s := p.String()
				if p.Key == c.key && strings.Contains(p.Msg, c.msg) {
					found = true
					if !strings.HasPrefix(s, "/etc/test/escale.toml: "+c.key+": ") {
						t.Errorf("message %q should start with the file and key", s)
					}
				}
			}
			if !found {
				t.Errorf("no problem at %s containing %q; got:\n%v", c.key, c.msg, (&ValidationError{ps}).Error())
			}
		})
	}
}

// One load reports every problem, in a stable order.
func TestAllProblemsReported(t *testing.T) {
	data := `
log_level = "loud"
[repository.a]
path = "/a"
quota = "lots"
mode = "x"
[repository.b]
relay = "r:b"
puller = 1
`
	ps := problems(t, data, testOpts(t, env{}))
	var keys []string
	for _, p := range ps {
		keys = append(keys, p.Key)
	}
	want := []string{"log_level", "repository.a.mode", "repository.a.quota", "repository.a.relay", "repository.b.puller", "repository.b.path"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("problem keys %q, want %q", keys, want)
	}
	err := &ValidationError{ps}
	if n := strings.Count(err.Error(), "\n"); n != len(want)-1 {
		t.Errorf("Error() has %d lines:\n%s", n+1, err)
	}
}

func TestSyntaxErrorPosition(t *testing.T) {
	data := "log_level = \"info\"\n\n[repository.work]\npath = \"/w\"\nrelay = r:w\n"
	ps := problems(t, data, testOpts(t, env{}))
	if len(ps) != 1 || ps[0].Line != 5 || ps[0].Column < 9 || ps[0].Column > 10 || !strings.Contains(ps[0].Msg, "syntax error") {
		t.Fatalf("problems = %+v", ps)
	}
	if s := ps[0].String(); !strings.HasPrefix(s, "/etc/test/escale.toml:5:") {
		t.Errorf("String() = %q, want file:line:col", s)
	}
	// A duplicate key is a syntax error too, with its line.
	ps = problems(t, minimal+"path = \"/again\"\n", testOpts(t, env{}))
	if len(ps) != 1 || ps[0].Line != 5 {
		t.Errorf("duplicate key problems = %+v", ps)
	}
}

func TestClientFromHostname(t *testing.T) {
	o := testOpts(t, env{})
	o.Hostname = func() (string, error) { return "", errors.New("no uts") }
	ps := problems(t, minimal, o)
	if len(ps) != 1 || ps[0].Key != "repository.work.client" || !strings.Contains(ps[0].Msg, "host name is unknown (no uts)") {
		t.Errorf("problems = %+v", ps)
	}
	// An explicit client needs no host name.
	if _, err := Parse("/etc/test/escale.toml", []byte(minimal+"client = \"c1\"\n"), o); err != nil {
		t.Error(err)
	}
}

func TestKeySource(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	writeFile(t, pass, "correct horse\n")
	creds := t.TempDir()
	writeFile(t, filepath.Join(creds, "escale.passphrase"), "x")
	writeFile(t, filepath.Join(creds, "escale.work.passphrase"), "y")

	cases := []struct {
		name        string
		r           Repository
		env         env
		interactive bool
		want        KeySource
		err         string
	}{
		{"none", Repository{Name: "work", Encryption: "none", PassphraseFile: pass}, env{}, false, KeySource{Kind: KeyNone}, ""},
		{"passphrase file", Repository{Name: "work", Encryption: "age", PassphraseFile: pass}, env{"ESCALE_PASSPHRASE": "p"}, false, KeySource{KeyPassphraseFile, pass}, ""},
		{"identity file", Repository{Name: "work", Encryption: "age", KeyFile: pass}, env{}, false, KeySource{KeyIdentityFile, pass}, ""},
		{"missing file", Repository{Name: "work", Encryption: "age", PassphraseFile: pass + ".no"}, env{"ESCALE_PASSPHRASE": "p"}, true, KeySource{}, "repository.work.passphrase_file: " + pass + ".no does not exist"},
		{"directory", Repository{Name: "work", Encryption: "age", KeyFile: dir}, env{}, false, KeySource{}, "is not a regular file"},
		{"per-repository credential", Repository{Name: "work", Encryption: "age"}, env{"CREDENTIALS_DIRECTORY": creds, "ESCALE_PASSPHRASE": "p"}, false, KeySource{KeyCredential, filepath.Join(creds, "escale.work.passphrase")}, ""},
		{"shared credential", Repository{Name: "other", Encryption: "age"}, env{"CREDENTIALS_DIRECTORY": creds}, false, KeySource{KeyCredential, filepath.Join(creds, "escale.passphrase")}, ""},
		{"environment", Repository{Name: "work", Encryption: "age"}, env{"CREDENTIALS_DIRECTORY": dir, "ESCALE_PASSPHRASE": "p"}, false, KeySource{Kind: KeyEnv}, ""},
		{"prompt", Repository{Name: "work", Encryption: "age"}, env{}, true, KeySource{Kind: KeyPrompt}, ""},
		{"nothing", Repository{Name: "work", Encryption: "age"}, env{}, false, KeySource{}, "repository.work: encryption is age but no key is available"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.r.KeySource(c.env.get, c.interactive)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("KeySource = %+v, %v; want error containing %q", got, err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("KeySource = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

// A file escale cannot read is reported, not taken for a missing one.
func TestUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		// root reads anything; use a directory instead, which no one can read as TOML.
		dir := filepath.Join(t.TempDir(), "escale.toml")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		o := testOpts(t, env{})
		o.Path = dir
		_, err := Load(o)
		var ve *ValidationError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), "cannot read") {
			t.Fatalf("Load(dir) = %v", err)
		}
		return
	}
	p := filepath.Join(t.TempDir(), "escale.toml")
	writeFile(t, p, minimal)
	if err := os.Chmod(p, 0); err != nil {
		t.Fatal(err)
	}
	o := testOpts(t, env{})
	o.Path = p
	if _, err := Load(o); err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Fatalf("Load(unreadable) = %v", err)
	}
}
