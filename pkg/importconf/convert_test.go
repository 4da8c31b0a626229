package importconf

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/config"
)

var fixed = func() time.Time { return time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC) }

// load converts a fixture and loads the TOML through pkg/config, as
// `escale config check` would.
func load(t *testing.T, file string) (*Result, *config.Config, string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	res, err := Convert(file, data, Options{SecretDir: dir, Now: fixed})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(filepath.Join(dir, "escale.toml"), res.TOML, config.LoadOptions{Home: dir,
		Getenv: func(string) string { return "" }, Hostname: func() (string, error) { return "h", nil }})
	if err != nil {
		t.Fatalf("the converted file does not load: %v\n%s", err, res.TOML)
	}
	return res, cfg, dir
}

func notes(res *Result) string {
	var l []string
	for _, n := range res.Notes {
		l = append(l, n.String())
	}
	return strings.Join(l, "\n")
}

func TestWizardFile(t *testing.T) {
	res, cfg, dir := load(t, "testdata/wizard.conf")
	if cfg.LogFile != "/var/log/escale.log" || cfg.LogRotate.Size != 1<<20 || cfg.LogRotate.Keep != 5 {
		t.Errorf("globals: %+v", cfg)
	}
	docs, photos := cfg.Repository("documents"), cfg.Repository("photos")
	if docs == nil || photos == nil {
		t.Fatalf("repositories: %+v", cfg.Repositories)
	}
	pass := filepath.Join(dir, "documents.passphrase")
	if docs.Path != "/home/alice/Documents" || docs.Relay != "escale-documents:Escale Repository" || docs.Mode != config.ModeShared ||
		docs.MaxPoll != 10*time.Second || docs.Quota != 2<<30 || docs.MaxPackSize != 200<<20 || docs.Encryption != "age" || docs.PassphraseFile != pass {
		t.Errorf("documents: %+v", docs)
	}
	if photos.Relay != ":webdav,url='https://dav.example.org:8443/remote.php/dav':escale/photos" || photos.Mode != config.ModeUpload ||
		photos.MaxPoll != 10*time.Minute || photos.Quota != 5<<20 || photos.Maintainer != "alice@example.org" ||
		strings.Join(photos.Extensions, ",") != "jpg,png" || photos.Encryption != "none" {
		t.Errorf("photos: %+v", photos)
	}
	// Secrets stay out of the TOML: the passphrase goes to a file to write,
	// the relay password to a note telling how to make the rclone remote.
	for _, secret := range []string{"s3cret", "correct horse"} {
		if strings.Contains(string(res.TOML), secret) || strings.Contains(notes(res), secret) {
			t.Errorf("%q leaked into the output:\n%s\n%s", secret, res.TOML, notes(res))
		}
	}
	if len(res.Secrets) != 1 || res.Secrets[0].Path != pass || string(res.Secrets[0].Data) != "correct horse battery staple\n" {
		t.Errorf("secrets: %+v", res.Secrets)
	}
	n := notes(res)
	for _, want := range []string{
		"testdata/wizard.conf:10: [documents] password: passwords never go into escale's configuration: create the rclone remote with `rclone config create escale-documents ftp host=ftp.example.org user=alice pass=PASSWORD --obscure`",
		"testdata/wizard.conf:16: [documents] checksum cache: no equivalent",
		"testdata/wizard.conf:26: [photos] quota: a size without a unit was read as MB",
	} {
		if !strings.Contains(n, want) {
			t.Errorf("notes lack %q:\n%s", want, n)
		}
	}
	// The TOML says where each value came from, and lists the notes.
	if !strings.Contains(string(res.TOML), "# from \"disk quota\" (line 13)\nquota = \"2GiB\"") ||
		!strings.Contains(string(res.TOML), "# testdata/wizard.conf:16: [documents] checksum cache") {
		t.Errorf("TOML comments:\n%s", res.TOML)
	}
}

func TestAliasesFile(t *testing.T) {
	res, cfg, dir := load(t, "testdata/aliases.conf")
	if cfg.LogLevel != "info" || cfg.StateDir != "/var/cache/escale" {
		t.Errorf("globals: %+v", cfg)
	}
	work := cfg.Repository("work")
	if work.Path != "/srv/escale/work" || work.Relay != "/mnt/relay/work" || work.Client != "office-pc" || work.Maintainer != "admin@example.org" ||
		work.Mode != config.ModeConservative || work.Pullers != 2 || work.Index != (config.IndexSpec{Kind: "topdir", N: 2}) ||
		work.MaxPackSize != 1<<30 || work.Quota != 1536<<20 || work.PassphraseFile != "/srv/escale/work.key" ||
		strings.Join(work.Include, ",") != "*.txt,*.md" || strings.Join(work.Exclude, ",") != `~*,/^(?:\.bak$)/` ||
		strings.Join(work.IncludeDirs, ",") != "docs" || strings.Join(work.ExcludeDirs, ",") != "tmp" {
		t.Errorf("work: %+v", work)
	}
	site := cfg.Repository("ftp-site")
	if site.Relay != "escale-ftp-site:pub/site" || site.Mode != config.ModeDownload || site.MaxPoll != 4*time.Second || site.MinPoll != 2*time.Second ||
		site.Client != "web-server" || site.Encryption != "none" || site.Maintainer != "webmaster@example.org" || site.Quota != 500<<20 {
		t.Errorf("ftp-site: %+v", site)
	}
	if c := cfg.Repository("cloud"); c.Relay != "mys3:escale/cloud" || c.Pullers != 2 || c.Mode != config.ModeShared {
		t.Errorf("cloud: %+v", c)
	}
	if g := cfg.Repository("google"); g.Relay != "escale-google:Escale" || g.PassphraseFile != filepath.Join(dir, "google.passphrase") {
		t.Errorf("google: %+v", g)
	}
	if b := cfg.Repository("sftp-box"); b.Relay != "escale-sftp-box:escale" || b.Encryption != "age" {
		t.Errorf("sftp-box: %+v", b)
	}
	if n := cfg.Repository("nas"); n.Relay != "/mnt/nas/escale" || n.Encryption != "none" {
		t.Errorf("nas: %+v", n)
	}
	// %% is a percent sign, and a DEFAULT value interpolates in a section.
	for _, s := range res.Secrets {
		if s.Path == filepath.Join(dir, "sftp-box.passphrase") && string(s.Data) != "100% secret\n" {
			t.Errorf("sftp-box passphrase %q", s.Data)
		}
	}
	n := notes(res)
	for _, want := range []string{
		"aliases.conf:9: [DEFAULT] keep alive: no equivalent: run `escale sync` under systemd",
		"aliases.conf:33: [work] lock timeout: escale refreshes its locks",
		"aliases.conf:47: [ftp-site] relay address: ftps becomes FTP with explicit TLS",
		"aliases.conf:51: [ftp-site] secret file: passwords never go into escale's configuration: create the rclone remote with `rclone config create escale-ftp-site ftp host=files.example.org explicit_tls=true port=2121 user=bob pass=PASSWORD --obscure`, PASSWORD being the password in /etc/escale/site.credential",
		"aliases.conf:53: [ftp-site] verify ssl: no equivalent",
		"aliases.conf:66: [ftp-site] count: not an option of the original escale either",
		"aliases.conf:78: [cloud] address: the rclone remote \"mys3\" must be in the rclone.conf",
		"aliases.conf:21: [work] key: /srv/escale/work.key does not exist on this machine",
	} {
		if !strings.Contains(n, want) {
			t.Errorf("notes lack %q:\n%s", want, n)
		}
	}
	for _, secret := range []string{"hunter2", "hunter3", "not in the toml"} {
		if strings.Contains(string(res.TOML), secret) || strings.Contains(n, secret) {
			t.Errorf("%q leaked", secret)
		}
	}
}

// Every option name the original recognised, under every alias, is
// understood: converted, or named in a note with a reason, never
// reported as unknown.
func TestEveryAlias(t *testing.T) {
	values := map[string]string{
		"path": "/data/x", "address": "/mnt/relay", "directory": "sub", "port": "21", "username": "u", "password": "pw",
		"protocol": "file", "refresh": "20", "timestamp": "no", "clientname": "c", "encryption": "yes", "passphrase": "words",
		"push_only": "yes", "pull_only": "yes", "filetype": "txt", "quota": "1GB", "maintainer": "a@b.org", "locktimeout": "10",
		"mode": "upload", "count": "1", "index": "topdir:1", "maxpagesize": "10MB", "verbosity": "2", "log_level": "DEBUG",
		"log_rotate": "3", "log_file": "/tmp/escale.log", "cache": "/tmp/escale-cache",
	}
	names := make([]string, 0, len(aliases))
	for n := range aliases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		fd := aliases[name]
		v, ok := values[fd]
		if !ok {
			v = "yes"
		}
		body := "[r]\nlocal path = /data/r\naddress = /mnt/relay\n"
		if fd == "path" || fd == "address" {
			body = "[r]\n"
			if fd == "address" {
				body += "path = /data/r\n"
			} else {
				body += "address = /mnt/relay\n"
			}
		}
		if globalOnly[fd] {
			body = name + " = " + v + "\n" + body
		} else {
			body += name + " = " + v + "\n"
		}
		res, err := Convert("old.conf", []byte(body), Options{SecretDir: t.TempDir(), Now: fixed})
		if err != nil {
			t.Errorf("%q (%s): %v", name, fd, err)
			continue
		}
		text := string(res.TOML)
		if strings.Contains(notes(res), "not an option of the original") {
			t.Errorf("%q reported unknown:\n%s", name, notes(res))
		}
		if !strings.Contains(text, "from \""+name+"\"") && !strings.Contains(notes(res), " "+name+": ") && !strings.Contains(text, "line 3") {
			t.Errorf("%q (%s) is neither converted nor noted:\n%s", name, fd, text)
		}
	}
}

func TestINISemantics(t *testing.T) {
	old := `top = /data
[DEFAULT]
relay = /mnt/relay
[one]
Local Path: %(top)s/one
address = %(relay)s/one
exclude = *.tmp,
  *.bak

  *.old
# a comment
; another
[two]
local_path = %(top)s/two
address = %(relay)s/two
client = %(missing)s
`
	_, err := Convert("old.conf", []byte(old), Options{SecretDir: t.TempDir(), Now: fixed})
	var e *Error
	if !errors.As(err, &e) || len(e.Problems) != 1 || e.Problems[0].Line != 16 || !strings.Contains(e.Error(), "old.conf:16: client: %(missing)s refers to no option of [two] or DEFAULT") {
		t.Fatalf("error %v", err)
	}
	res, err := Convert("old.conf", []byte(strings.Replace(old, "%(missing)s", "me", 1)), Options{SecretDir: t.TempDir(), Now: fixed})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`path = "/data/one"`, `relay = "/mnt/relay/one"`, `exclude = ["*.tmp", "*.bak", "*.old"]`, `path = "/data/two"`, `client = "me"`} {
		if !strings.Contains(string(res.TOML), want) {
			t.Errorf("TOML lacks %s:\n%s", want, res.TOML)
		}
	}
}

func TestBadValuesNameTheLine(t *testing.T) {
	cases := []struct{ body, want string }{
		{"[a]\npath = /a\naddress = /r\ndisk quota = lots\n", `old.conf:4: disk quota = lots: "lots" is not a size`},
		{"[a]\npath = /a\naddress = /r\nrefresh = soon\n", `old.conf:4: refresh = soon: "soon" is not a number of seconds`},
		{"[a]\npath = /a\naddress = /r\nmode = sideways\n", "old.conf:4: mode = sideways: not a mode"},
		{"[a]\npath = /a\naddress = /r\npush only = yes\npull only = yes\n", "old.conf:4: push only = yes: push only and pull only are both set"},
		{"[a]\npath = /a\naddress = /r\nencryption = rot13\n", "old.conf:4: encryption = rot13: not an encryption the original knew"},
		{"[a]\npath = /a\naddress = /r\ninclude = *.c\npattern = *.h\n", `old.conf:5: "pattern" and "include" (line 4) are two names of one option`},
		{"[a]\npath = /a\naddress = /r\nquota = 5 %\n", "old.conf:4: quota: a lone %"},
		{"[a]\npath = /a\n", "old.conf:1: [a] has no relay address"},
		{"[a]\npath = /a\naddress = ssh://h\n", `old.conf:3: address = ssh://h: protocol "ssh" has no equivalent`},
		{"[a]\npath = /a\nnot an option line\n", `old.conf:3: "not an option line" is not an option`},
		{"[a]\npath = /a\n[a]\n", "old.conf:3: section [a] appears twice"},
		{"path = /a\n", "old.conf:1: no [section]"},
	}
	for _, c := range cases {
		_, err := Convert("old.conf", []byte(c.body), Options{SecretDir: t.TempDir(), Now: fixed})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.body, err, c.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"2": 2 << 20, "2GB": 2 << 30, "2 Go": 2 << 30, "1,5 GiB": 3 << 29, "1.5G": 3 << 29,
		"10Kb": 10000, "10 KB": 10 << 10, "3Mb": 3e6, "1T": 1 << 40, "100 B": 100} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "GB", "2 XB", "2 Mq", "-1"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}
