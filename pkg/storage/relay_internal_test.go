package storage

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rclone/rclone/fs"
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

// lookupCounter counts the lookups (NewObject) a backend is asked for.
type lookupCounter struct {
	fs.Fs
	n atomic.Int32
}

func (c *lookupCounter) NewObject(ctx context.Context, remote string) (fs.Object, error) {
	c.n.Add(1)
	return c.Fs.NewObject(ctx, remote)
}

// Objects of a folder KeepListed listed open without a lookup; others, and
// one written since, are looked up.
func TestKeepListedSkipsLookups(t *testing.T) {
	ctx := context.Background()
	r, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, n := range []string{"d/a", "d/b", "e/c"} {
		if _, err := r.Put(ctx, n, strings.NewReader(n), int64(len(n))); err != nil {
			t.Fatal(err)
		}
	}
	lc := &lookupCounter{Fs: r.f}
	r.f = lc
	if n, err := r.KeepListed(ctx, "d"); err != nil || n != 2 {
		t.Fatalf("KeepListed: %d, %v", n, err)
	}
	read := func(name string) {
		t.Helper()
		rc, err := r.Open(ctx, name, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(b) != name {
			t.Fatalf("%s read %q, %v", name, b, err)
		}
	}
	read("d/a")
	read("d/b")
	if got := lc.n.Load(); got != 0 {
		t.Fatalf("%d lookups for listed objects", got)
	}
	read("e/c")
	if _, err := r.Put(ctx, "d/a", strings.NewReader("d/a"), 3); err != nil {
		t.Fatal(err)
	}
	read("d/a")
	if got := lc.n.Load(); got != 2 {
		t.Fatalf("%d lookups, want 2 (an unlisted object, one rewritten since)", got)
	}
	r.ForgetListed()
	read("d/b")
	if got := lc.n.Load(); got != 3 {
		t.Fatalf("%d lookups after ForgetListed, want 3", got)
	}
}
