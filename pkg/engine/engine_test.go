package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/filter"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/storage"
	"github.com/escale-sync/escale/pkg/storage/faulty"
)

// world is a relay folder on the local disk and the clients syncing through it.
type world struct {
	t     *testing.T
	relay string
	root  string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	root := t.TempDir()
	w := &world{t: t, root: root, relay: filepath.Join(root, "relay")}
	if err := os.MkdirAll(w.relay, 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

type client struct {
	t    *testing.T
	name string
	dir  string
	e    *Engine
}

func (w *world) client(name string, tweak ...func(*Options)) *client {
	w.t.Helper()
	relay, err := storage.Open(context.Background(), w.relay)
	if err != nil {
		w.t.Fatal(err)
	}
	return w.clientWithRelay(name, relay, tweak...)
}

// clientWithRelay is a client on any relay, e.g. a real server.
func (w *world) clientWithRelay(name string, relay *storage.Relay, tweak ...func(*Options)) *client {
	t := w.t
	t.Helper()
	dir := filepath.Join(w.root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Name: "test", Path: dir, Client: name, Mode: Shared,
		StateDir:    filepath.Join(w.root, "state-"+name),
		Encrypted:   true,
		Credentials: protocol.Credentials{Passphrase: "correct horse battery staple"},
		KeyOptions:  []envelope.Option{envelope.WithScryptWorkFactor(10)},
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, f := range tweak {
		f(&opts)
	}
	e, err := New(context.Background(), relay, opts)
	if err != nil {
		t.Fatalf("client %s: %v", name, err)
	}
	t.Cleanup(func() { e.Close() })
	return &client{t: t, name: name, dir: dir, e: e}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (c *client) round() *Result {
	c.t.Helper()
	res, err := c.e.Round(context.Background())
	if err != nil {
		c.t.Fatalf("round of %s: %v", c.name, err)
	}
	return res
}

func (c *client) write(rel, content string, mtime time.Time) {
	c.t.Helper()
	p := filepath.Join(c.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		c.t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *client) read(rel string) (string, bool) {
	data, err := os.ReadFile(filepath.Join(c.dir, rel))
	if err != nil {
		return "", false
	}
	return string(data), true
}

// tree describes a folder: path → content, mode and mtime second.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		var body string
		if info.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			body = "link:" + target
		} else {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			body = string(data)
		}
		out[filepath.ToSlash(rel)] = body + "|" + info.Mode().Perm().String() + "|" + info.ModTime().UTC().Format(time.RFC3339)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTrees(t *testing.T, a, b *client) {
	t.Helper()
	ta, tb := tree(t, a.dir), tree(t, b.dir)
	var diffs []string
	for k, v := range ta {
		if tb[k] != v {
			diffs = append(diffs, k)
		}
	}
	for k := range tb {
		if _, ok := ta[k]; !ok {
			diffs = append(diffs, k)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Fatalf("%s and %s differ at %v", a.name, b.name, diffs)
	}
}

// relayData lists the data objects and manifests left on the relay.
func (w *world) relayData() []string {
	var out []string
	filepath.WalkDir(filepath.Join(w.relay, "clients"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.Contains(p, "/data/") || strings.Contains(p, "/log/")) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTwoClientsConvergeAndRelayEmpties(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	old := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	a.write("notes/todo.txt", "buy milk\n", old)
	a.write("top.txt", strings.Repeat("compressible ", 1000), time.Time{})
	a.write("empty", "", old)
	if err := os.WriteFile(filepath.Join(a.dir, "big.bin"), randomBytes(t, 3<<20+123), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("notes/todo.txt", filepath.Join(a.dir, "link")); err != nil {
		t.Fatal(err)
	}
	if r := a.round(); r.Pushed != 5 {
		t.Fatalf("alpha pushed %d changes, want 5", r.Pushed)
	}
	b.round() // registers late: alpha's data waited for the first puller
	sameTrees(t, a, b)
	if len(w.relayData()) == 0 {
		t.Fatal("data left the relay before alpha saw the acknowledgement")
	}
	a.round() // reads beta's acks and collects
	if left := w.relayData(); len(left) != 0 {
		t.Fatalf("relay still holds %v after every puller acknowledged", left)
	}
	// Idle rounds change nothing.
	if r := b.round(); r.Busy() {
		t.Fatalf("idle round of beta was busy: %+v", r)
	}
}

func TestBlindRelay(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	marker := "ZEBRA-MARKER-7731"
	a.write("secret-"+marker+"/"+marker+".txt", "content "+marker, time.Time{})
	a.round()
	b.round()
	err := filepath.WalkDir(w.relay, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(p, marker) {
			t.Errorf("relay name %s shows the marker", p)
		}
		if !d.IsDir() {
			data, _ := os.ReadFile(p)
			if bytes.Contains(data, []byte(marker)) {
				t.Errorf("relay object %s holds the marker", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := b.read("secret-" + marker + "/" + marker + ".txt"); got != "content "+marker {
		t.Fatalf("beta got %q", got)
	}
}

func TestModifyDeleteRenamePropagate(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	a.write("a.txt", "one", time.Time{})
	a.write("b.txt", "two", time.Time{})
	a.write("c.txt", strings.Repeat("rename me ", 100), time.Time{})
	a.round()
	b.round()
	a.round()

	b.write("a.txt", "one, edited on beta", time.Time{})
	b.round()
	a.round()
	if got, _ := a.read("a.txt"); got != "one, edited on beta" {
		t.Fatalf("edit did not reach alpha: %q", got)
	}

	if err := os.Remove(filepath.Join(a.dir, "b.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(a.dir, "c.txt"), filepath.Join(a.dir, "d.txt")); err != nil {
		t.Fatal(err)
	}
	a.round()
	r := b.round()
	if _, ok := b.read("b.txt"); ok {
		t.Fatal("deletion did not reach beta")
	}
	if got, _ := b.read("d.txt"); got != strings.Repeat("rename me ", 100) {
		t.Fatalf("rename did not reach beta: %q", got)
	}
	if r.BytesDown != 0 {
		t.Fatalf("a rename downloaded %d bytes; it should be a local move", r.BytesDown)
	}
	trashed, err := b.e.folder.Trash().List()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, te := range trashed {
		if te.Name == "b.txt" {
			found = true
		}
	}
	if !found {
		t.Fatalf("the deleted file is not in beta's trash: %+v", trashed)
	}
	sameTrees(t, a, b)
}

func TestConflictKeepsBothVersions(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	a.write("doc.txt", "base", base)
	a.round()
	b.round()
	// Both edit; beta's edit is later, so beta's wins everywhere.
	a.write("doc.txt", "alpha's edit", base.Add(time.Hour))
	b.write("doc.txt", "beta's edit", base.Add(2*time.Hour))
	a.round()
	rb := b.round() // keeps its own (later) edit and pushes it
	if rb.Conflicts != 0 {
		t.Fatalf("the winner made a conflict copy")
	}
	ra := a.round() // alpha authored the loser: it keeps it as a conflict copy
	if ra.Conflicts != 1 {
		t.Fatalf("alpha made %d conflict copies, want 1", ra.Conflicts)
	}
	b.round()
	a.round()
	b.round()
	sameTrees(t, a, b)
	if got, _ := a.read("doc.txt"); got != "beta's edit" {
		t.Fatalf("winner: %q", got)
	}
	copyName := "doc.sync-conflict-" + base.Add(time.Hour).UTC().Format("20060102-150405") + "-alpha.txt"
	if got, _ := b.read(copyName); got != "alpha's edit" {
		t.Fatalf("conflict copy %s on beta: %q", copyName, got)
	}
}

func TestDeleteVersusModifyModifyWins(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	a.write("f.txt", "v1", time.Time{})
	a.round()
	b.round()
	os.Remove(filepath.Join(a.dir, "f.txt"))
	b.write("f.txt", "v2 from beta", time.Time{})
	a.round()
	b.round()
	a.round()
	b.round()
	for _, c := range []*client{a, b} {
		if got, _ := c.read("f.txt"); got != "v2 from beta" {
			t.Fatalf("%s: %q; the modification must win over the deletion", c.name, got)
		}
	}
}

func TestMassDeleteHeldBack(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	for i := range 30 {
		a.write(filepath.Join("d", string(rune('a'+i%26))+string(rune('a'+i/26))+".txt"), "x", time.Time{})
	}
	a.round()
	b.round()
	// The folder is emptied (an unmounted disk, a bad script).
	if err := os.RemoveAll(filepath.Join(a.dir, "d")); err != nil {
		t.Fatal(err)
	}
	r := a.round()
	if len(r.Waiting) == 0 || !strings.Contains(strings.Join(r.Waiting, " "), "mass deletion") {
		t.Fatalf("no mass-deletion hold: %+v", r)
	}
	b.round()
	if len(tree(t, b.dir)) != 30 {
		t.Fatal("beta lost files to a held-back mass deletion")
	}
}

func TestBigFileDeltaSendsChangedChunks(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	if testing.Short() {
		t.Skip("writes 64 MiB twice")
	}
	data := randomBytes(t, 64<<20)
	p := filepath.Join(a.dir, "disk.img")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	a.round()
	b.round()
	a.round()
	copy(data[30<<20:], randomBytes(t, 1<<20)) // 1 MiB changed in the middle
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ra := a.round()
	rb := b.round()
	got, _ := b.read("disk.img")
	if got != string(data) {
		t.Fatal("beta's copy differs after the delta")
	}
	// The changed MiB and the chunks around it: at most 2 MiB each, and
	// where the chunking falls in step again depends on the (random) key and
	// content, so a rare run re-sends a third chunk. 8 MiB is far from the
	// 64 MiB of a whole re-send; the 2 % figure of a 1 MiB change in 1 GiB is
	// the benchmark's (docs/BENCHMARKS.md), a median over runs.
	const limit = 8 << 20
	if ra.BytesUp > limit || rb.BytesDown > limit {
		t.Fatalf("a 1 MiB change in 64 MiB moved %d bytes up and %d down; want at most %d", ra.BytesUp, rb.BytesDown, limit)
	}
	t.Logf("1 MiB changed in 64 MiB: %d bytes up, %d down", ra.BytesUp, rb.BytesDown)
}

func TestPullersKeepDataUntilLastExpected(t *testing.T) {
	w := newWorld(t)
	a, b, c := w.client("alpha"), w.client("beta"), w.client("gamma")
	b.round()
	c.round() // both registered as pullers
	a.write("f.txt", "hello", time.Time{})
	a.round()
	b.round()
	a.round()
	if len(w.relayData()) == 0 {
		t.Fatal("data left before gamma, an expected puller, had it")
	}
	c.round()
	a.round()
	if left := w.relayData(); len(left) != 0 {
		t.Fatalf("data stayed after all pullers: %v", left)
	}
	if got, _ := c.read("f.txt"); got != "hello" {
		t.Fatalf("gamma: %q", got)
	}
}

func TestUploadAndDownloadModes(t *testing.T) {
	w := newWorld(t)
	up := w.client("up", func(o *Options) { o.Mode = Upload })
	down := w.client("down", func(o *Options) { o.Mode = Download })
	up.write("f.txt", "from up", time.Time{})
	down.write("local.txt", "never pushed", time.Time{})
	down.round()
	up.round()
	down.round()
	up.round()
	if got, _ := down.read("f.txt"); got != "from up" {
		t.Fatalf("download client: %q", got)
	}
	if _, ok := up.read("local.txt"); ok {
		t.Fatal("a download client pushed")
	}
}

func TestWrongPassphrase(t *testing.T) {
	w := newWorld(t)
	w.client("alpha").round()
	relay, err := storage.Open(context.Background(), w.relay)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = New(context.Background(), relay, Options{Name: "t", Path: t.TempDir(), Client: "beta", StateDir: t.TempDir(), Encrypted: true, Credentials: protocol.Credentials{Passphrase: "wrong"}})
	if err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Fatalf("a wrong passphrase took %s to report", time.Since(start))
	}
}

// TestStateOfAnotherClientRefused: two configurations that share a
// state_dir and a repository name must not share the state (the second
// would push its folder as the first client's edits).
func TestStateOfAnotherClientRefused(t *testing.T) {
	w := newWorld(t)
	a := w.client("alpha")
	a.round()
	if err := a.e.Close(); err != nil {
		t.Fatal(err)
	}
	relay, err := storage.Open(context.Background(), w.relay)
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), relay, Options{Name: "t", Path: t.TempDir(), Client: "beta", StateDir: filepath.Join(w.root, "state-alpha"), Encrypted: true, Credentials: protocol.Credentials{Passphrase: "correct horse battery staple"}})
	if err == nil || !strings.Contains(err.Error(), `belongs to client "alpha", not "beta"`) {
		t.Fatalf("a client opened another client's state: %v", err)
	}
}

func TestHostileManifestRejected(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	a.write("ok.txt", "fine", time.Time{})
	a.round()
	// A relay with the key material (or a bug) writes a manifest with an
	// escaping path as alpha's next update.
	evil := protocol.Manifest{V: protocol.Version, Client: "alpha", Seq: 2, Need: 1, Changes: []protocol.Change{{
		Path: "../escaped.txt", Kind: protocol.KindDelete, Version: protocol.Vector{a.e.CID(): 99}, By: "alpha",
	}}}
	ctx := context.Background()
	if _, err := a.e.repo.PutJSON(ctx, envelope.KindManifest, protocol.ManifestName(a.e.CID(), 2), &evil); err != nil {
		t.Fatal(err)
	}
	if err := a.e.repo.PutHead(ctx, protocol.Head{CID: a.e.CID(), Seq: 2}); err != nil {
		t.Fatal(err)
	}
	_, err := b.e.Round(ctx)
	if err == nil || !strings.Contains(err.Error(), "..") {
		t.Fatalf("hostile path accepted: %v", err)
	}
	if _, err := os.Stat(filepath.Join(w.root, "escaped.txt")); err == nil {
		t.Fatal("something was written outside the folder")
	}
}

func TestLateJoinerGetsEverything(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	a.write("docs/one.txt", "one", time.Time{})
	a.write("docs/two.txt", "two", time.Time{})
	if err := os.WriteFile(filepath.Join(a.dir, "big.bin"), randomBytes(t, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	a.round()
	b.round()
	b.write("docs/two.txt", "two, edited by beta", time.Time{})
	os.Remove(filepath.Join(b.dir, "docs/one.txt"))
	b.round()
	a.round()
	b.round()
	if left := w.relayData(); len(left) != 0 {
		t.Fatalf("relay not empty before the late joiner: %v", left)
	}
	// A new laptop joins long after the data was consumed.
	c := w.client("gamma")
	c.round() // learns the tree from the indexes and asks for the content
	a.round() // holders republish, for gamma only
	b.round()
	c.round()
	sameTrees(t, a, c)
	sameTrees(t, b, c)
	a.round()
	b.round()
	if left := w.relayData(); len(left) != 0 {
		t.Fatalf("republished data stayed after gamma had it: %v", left)
	}
}

func TestAccessModifiers(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	a.write("private.txt", "stays here", time.Time{})
	a.write("shared.txt", "v1", time.Time{})
	if err := SetAccess(a.e.DB(), "private.txt", Access{Read: false, Write: true}); err != nil {
		t.Fatal(err)
	}
	a.round()
	b.round()
	if _, ok := b.read("private.txt"); ok {
		t.Fatal("an r- file was pushed")
	}
	// w- on beta: alpha's edit does not overwrite beta's copy.
	if err := SetAccess(b.e.DB(), "shared.txt", Access{Read: true, Write: false}); err != nil {
		t.Fatal(err)
	}
	a.write("shared.txt", "v2", time.Time{})
	a.round()
	b.round()
	if got, _ := b.read("shared.txt"); got != "v1" {
		t.Fatalf("a w- file was overwritten: %q", got)
	}
	got, err := GetAccess(b.e.DB(), "shared.txt")
	if err != nil || got.String() != "r+w-" {
		t.Fatalf("access: %v %v", got, err)
	}
	if _, err := ParseModifiers(Access{}, "x+"); err == nil {
		t.Fatal("bad modifiers accepted")
	}
}

func TestFiltersAndConservative(t *testing.T) {
	w := newWorld(t)
	flt, err := filter.New(filter.Rules{Exclude: []string{"*.tmp"}, ExcludeDirs: []string{"cache"}})
	if err != nil {
		t.Fatal(err)
	}
	a := w.client("alpha", func(o *Options) { o.Filter = flt })
	c := w.client("cons", func(o *Options) { o.Mode = Conservative })
	a.write("keep.txt", "v1", time.Time{})
	a.write("skip.tmp", "temp", time.Time{})
	a.write("cache/x.bin", "cached", time.Time{})
	c.write("mine.txt", "conservative's own", time.Time{})
	a.round()
	c.round()
	a.round()
	if _, ok := c.read("skip.tmp"); ok {
		t.Fatal("an excluded file was synced")
	}
	if _, ok := c.read("cache/x.bin"); ok {
		t.Fatal("a file in an excluded folder was synced")
	}
	if got, _ := a.read("mine.txt"); got != "conservative's own" {
		t.Fatalf("the conservative client did not push: %q", got)
	}
	// A file the conservative client pulled is updated; one it wrote is not.
	a.write("keep.txt", "v2", time.Time{})
	a.write("mine.txt", "alpha overwrites", time.Time{})
	a.round()
	c.round()
	if got, _ := c.read("keep.txt"); got != "v2" {
		t.Fatalf("pulled file not updated on the conservative client: %q", got)
	}
	if got, _ := c.read("mine.txt"); got != "conservative's own" {
		t.Fatalf("the conservative client's own file was overwritten: %q", got)
	}
}

// TestSettleLeavesAFileBeingWritten: a synced file changed within Settle is
// left for a later round (a program rewriting it in place would otherwise
// have a snapshot between two of its writes pushed), then goes.
func TestSettleLeavesAFileBeingWritten(t *testing.T) {
	w := newWorld(t)
	a := w.client("alpha", func(o *Options) { o.Settle = time.Hour })
	b := w.client("beta")
	a.write("f.txt", "one", fixedTime())
	a.write("new.txt", "being written too", time.Time{})
	a.round()
	b.round()
	if got, _ := b.read("f.txt"); got != "one" {
		t.Fatalf("beta has %q", got)
	}
	if _, ok := b.read("new.txt"); ok {
		t.Fatal("a file written a moment ago was pushed")
	}
	a.write("f.txt", "two, being written", time.Time{}) // mtime: now
	res := a.round()
	if msg := strings.Join(res.Waiting, "; "); !strings.Contains(msg, "f.txt is being written") {
		t.Fatalf("the round does not say f.txt waits: %q", msg)
	}
	b.round()
	if got, _ := b.read("f.txt"); got != "one" {
		t.Fatalf("a file changed a moment ago was pushed: beta has %q", got)
	}
	a.write("f.txt", "two, written", fixedTime().Add(time.Minute)) // still for long
	a.round()
	b.round()
	if got, _ := b.read("f.txt"); got != "two, written" {
		t.Fatalf("the settled file did not go: beta has %q", got)
	}
}

// TestProgressCountsEveryByte: the progress hook (the --once bar) hears of
// every data byte a round moves, both ways.
func TestProgressCountsEveryByte(t *testing.T) {
	w := newWorld(t)
	var up, down int64
	a := w.client("alpha", func(o *Options) { o.Progress = func(n int64) { up += n } })
	b := w.client("beta", func(o *Options) { o.Progress = func(n int64) { down += n } })
	a.write("small.txt", "small", fixedTime())
	a.write("big.bin", strings.Repeat("not very random ", 100_000), fixedTime())
	ra := a.round()
	rb := b.round()
	if up == 0 || up != ra.BytesUp || ra.ObjectsUp == 0 {
		t.Fatalf("progress heard %d bytes up, the round moved %d in %d objects", up, ra.BytesUp, ra.ObjectsUp)
	}
	if down == 0 || down != rb.BytesDown || rb.ObjectsDown == 0 {
		t.Fatalf("progress heard %d bytes down, the round moved %d in %d objects", down, rb.BytesDown, rb.ObjectsDown)
	}
}

// faultyClients returns a fault injector on w's relay and a maker of
// clients that reach the relay through it (one retry per call).
func (w *world) faultyClients(t *testing.T) (*faulty.Injector, func(name string, tweak ...func(*Options)) *client) {
	t.Helper()
	inj := faulty.New()
	spec, unregister := faulty.Register(t.Name(), inj, w.relay)
	t.Cleanup(unregister)
	return inj, func(name string, tweak ...func(*Options)) *client {
		t.Helper()
		relay, err := storage.Open(context.Background(), spec, storage.WithRetries(1))
		if err != nil {
			t.Fatal(err)
		}
		return w.clientWithRelay(name, relay, tweak...)
	}
}

// What a pull wrote is not read again by the rescan after it: a pulled
// gigabyte would otherwise be hashed a second time to find it unchanged.
func TestPulledFilesAreNotHashedAgain(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("a"), w.client("b")
	a.round()
	b.round()
	old := time.Now().Add(-time.Hour)
	big := strings.Repeat("escale chunk content ", 300_000) // chunked: 6 MB
	a.write("big.bin", big, old)
	a.write("dir/small.txt", "small", old)
	// The scan reads both; the push hashes big.bin again as it chunks it:
	// written just now, its record is racy and vouches for nothing.
	if res := a.round(); res.Pushed != 2 || res.HashedBytes != int64(2*len(big)+len("small")) {
		t.Fatalf("push: pushed %d, hashed %d bytes", res.Pushed, res.HashedBytes)
	}
	res := b.round()
	if res.Pulled != 2 {
		t.Fatalf("pulled %d files, want 2", res.Pulled)
	}
	if res.HashedBytes != 0 {
		t.Fatalf("the rescan after the pull read %d bytes of the files it wrote", res.HashedBytes)
	}
	if got, _ := b.read("big.bin"); got != big {
		t.Fatal("big.bin differs")
	}
	// A pulled file changed afterwards is read, and pushed. (The files the
	// pull wrote are read once by a later scan, as any file whose record
	// was taken within the racy window of its change time.)
	b.write("dir/small.txt", "SMALL", old)
	if res := b.round(); res.Pushed != 1 || res.HashedBytes < int64(len("SMALL")) {
		t.Fatalf("after a local edit: pushed %d, hashed %d bytes", res.Pushed, res.HashedBytes)
	}
	a.round()
	if got, _ := a.read("dir/small.txt"); got != "SMALL" {
		t.Fatalf("a has %q", got)
	}
}

// A big file the scan hashed is not hashed again by the push when the scan's
// record vouches for it before and after the read; a change between the scan
// and the push, or during the read, still keeps the file out of the push.
func TestPushTrustsTheScanOfAnUnchangedFile(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("a"), w.client("b")
	a.e.racyWindow = time.Millisecond
	a.round()
	b.round()
	old := time.Now().Add(-time.Hour)
	content := func(v string) string { return strings.Repeat("escale chunk content "+v+" ", 300_000) }
	v1 := content("v1")
	a.write("big.bin", v1, old)
	time.Sleep(20 * time.Millisecond) // past the racy window of its change time
	if res := a.round(); res.Pushed != 1 || res.HashedBytes != int64(len(v1)) {
		t.Fatalf("push of v1: pushed %d, hashed %d bytes (want %d: the scan only)", res.Pushed, res.HashedBytes, len(v1))
	}
	b.round()
	if got, _ := b.read("big.bin"); got != v1 {
		t.Fatal("b's big.bin is not v1")
	}

	for _, point := range []string{"push", "read"} {
		t.Run("changed at "+point, func(t *testing.T) {
			scanned, changed := content(point+"-scanned"), content(point+"-changed")
			a.write("big.bin", scanned, old)
			time.Sleep(20 * time.Millisecond)
			a.e.testHook = func(at, path string) {
				if at == point && (point == "push" || path == "big.bin") {
					a.write("big.bin", changed, old) // same size and mtime
				}
			}
			res := a.round()
			a.e.testHook = nil
			if res.Pushed != 0 || !strings.Contains(strings.Join(res.Waiting, "\n"), "big.bin changed while being read") {
				t.Fatalf("changed at %s: pushed %d, waiting %q", point, res.Pushed, res.Waiting)
			}
			time.Sleep(20 * time.Millisecond)
			if res := a.round(); res.Pushed != 1 {
				t.Fatalf("next round pushed %d, want 1", res.Pushed)
			}
			b.round()
			if got, _ := b.read("big.bin"); got != changed {
				t.Fatalf("b's big.bin is not the changed content")
			}
		})
	}
}
