package relayops

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escale-sync/escale/pkg/config"
)

func TestEditRelay(t *testing.T) {
	for _, tc := range []struct {
		name, text, repo, spec, want string
		fails                        string
	}{
		{name: "keeps comments and spacing",
			text: "# top\nstate_dir = \"/s\"\n\n[repository.work]  # the work files\n  path = \"/w\"\n  relay = \"/old\"   # moved in 2026\n\n[repository.home]\nrelay = \"/home-relay\"\n",
			repo: "work", spec: "s3remote:bucket/escale",
			want: "# top\nstate_dir = \"/s\"\n\n[repository.work]  # the work files\n  path = \"/w\"\n  relay = 's3remote:bucket/escale'   # moved in 2026\n\n[repository.home]\nrelay = \"/home-relay\"\n"},
		{name: "other table untouched",
			text: "[repository.work]\nrelay = '/a'\n[repository.home]\nrelay = '/b' # b\n",
			repo: "home", spec: "/c",
			want: "[repository.work]\nrelay = '/a'\n[repository.home]\nrelay = '/c' # b\n"},
		{name: "quoted table name and escaped value",
			text: "[repository.\"work\"]\nrelay = \"/a \\\" b\" # c\n",
			repo: "work", spec: ":sftp,host=h,user=o'neil:escale",
			want: "[repository.\"work\"]\nrelay = \":sftp,host=h,user=o'neil:escale\" # c\n"},
		{name: "inherited relay gets its own line",
			text: "[repository.work]\npath = '/w'\n",
			repo: "work", spec: "/r",
			want: "[repository.work]\nrelay = '/r'\npath = '/w'\n"},
		{name: "crlf",
			text: "[repository.work]\r\nrelay = '/a'\r\n",
			repo: "work", spec: "/b",
			want: "[repository.work]\r\nrelay = '/b'\r\n"},
		{name: "no table", text: "[repository.home]\nrelay = '/a'\n", repo: "work", spec: "/b", fails: "no [repository.work]"},
		{name: "multi-line string", text: "[repository.work]\nrelay = '''/a'''\n", repo: "work", spec: "/b", fails: "by hand"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EditRelay(tc.text, tc.repo, tc.spec)
			if tc.fails != "" {
				if err == nil || !strings.Contains(err.Error(), tc.fails) {
					t.Fatalf("EditRelay: %v, want an error saying %q", err, tc.fails)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestSwitchRelay edits a real configuration file: the new one loads with
// the new relay and every other setting, the old one is kept as .bak.
func TestSwitchRelay(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "escale.toml")
	text := "# my setup\nstate_dir = " + tomlString(filepath.Join(dir, "state")) + "\n\n[repository.work]\npath = " +
		tomlString(filepath.Join(dir, "w")) + "\nrelay = " + tomlString(filepath.Join(dir, "old")) + " # the USB disk\nclient = \"laptop\"\nencryption = \"none\"\n"
	if err := os.WriteFile(file, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	newRelay := filepath.Join(dir, "new")
	bak, err := SwitchRelay(file, "work", newRelay)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(bak); err != nil || string(b) != text {
		t.Fatalf("backup %s: %v %q", bak, err, b)
	}
	cfg, err := config.Load(config.LoadOptions{Path: file})
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Repository("work")
	if r.Relay != newRelay || r.Client != "laptop" {
		t.Fatalf("after the switch: relay %q client %q", r.Relay, r.Client)
	}
	b, _ := os.ReadFile(file)
	if !strings.Contains(string(b), "# my setup") || !strings.Contains(string(b), "# the USB disk") {
		t.Fatalf("comments lost:\n%s", b)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640", st.Mode().Perm())
	}
	if _, err := SwitchRelay(file, "play", newRelay); err == nil {
		t.Fatal("switching an unknown repository succeeded")
	}
}

func TestAbsRelay(t *testing.T) {
	wd, _ := os.Getwd()
	for spec, want := range map[string]string{
		"remote:path":         "remote:path",
		":sftp,host=h:escale": ":sftp,host=h:escale",
		"relative/dir":        filepath.Join(wd, "relative/dir"),
		"./x:y":               filepath.Join(wd, "x:y"),
		"/abs/dir":            "/abs/dir",
	} {
		if got, err := AbsRelay(spec); err != nil || got != want {
			t.Errorf("AbsRelay(%q) = %q, %v; want %q", spec, got, err, want)
		}
	}
}
