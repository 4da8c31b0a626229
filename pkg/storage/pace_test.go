package storage

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rclone/rclone/fs/fspath"
)

// A WebDAV relay gets escale's pace unless its remote, its inline options or
// the environment set one; other backends are left as they are.
func TestWebDAVPace(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "rclone.conf")
	text := "[dav]\ntype = webdav\nurl = http://127.0.0.1:1/x\n\n[davslow]\ntype = webdav\nurl = http://127.0.0.1:1/x\npacer_min_sleep = 10ms\n\n[loc]\ntype = local\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Init(Options{RcloneConfig: conf}); err != nil {
		t.Fatal(err)
	}
	pace := func(t *testing.T, spec string) (string, bool) {
		t.Helper()
		rs, err := parseSpec(spec)
		if err != nil {
			t.Fatal(err)
		}
		p, err := fspath.Parse(rs.fsString)
		if err != nil {
			t.Fatalf("%s became %q, which rclone cannot parse: %v", spec, rs.fsString, err)
		}
		v, ok := p.Config.Get("pacer_min_sleep")
		return v, ok
	}
	t.Setenv("RCLONE_WEBDAV_PACER_MIN_SLEEP", "")
	os.Unsetenv("RCLONE_WEBDAV_PACER_MIN_SLEEP")
	for spec, want := range map[string]string{
		":webdav,url='http://h:1/a,b',user=u:relay": webdavMinSleep,
		":webdav,pacer_min_sleep=20ms,url=x:relay":  "20ms",
		"dav:relay":             webdavMinSleep,
		"dav,user=me:sub/relay": webdavMinSleep,
		"davslow:relay":         "",
		":sftp,host=h:relay":    "",
		"loc:relay":             "",
	} {
		got, _ := pace(t, spec)
		if got != want {
			t.Errorf("%s: pacer_min_sleep %q, want %q", spec, got, want)
		}
	}
	// The other options and the path survive the rewrite.
	rs, _ := parseSpec(":webdav,url='http://h:1/a,b',user=u:relay/x")
	p, _ := fspath.Parse(rs.fsString)
	if u, _ := p.Config.Get("url"); u != "http://h:1/a,b" || p.Path != "relay/x" || p.Name != ":webdav" {
		t.Errorf("rewritten to %q: url %q, path %q, name %q", rs.fsString, u, p.Path, p.Name)
	}
	t.Setenv("RCLONE_WEBDAV_PACER_MIN_SLEEP", "5ms")
	if got, ok := pace(t, "dav:relay"); ok {
		t.Errorf("with RCLONE_WEBDAV_PACER_MIN_SLEEP set, escale still set %q", got)
	}
}
