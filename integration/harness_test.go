//go:build unix

package integration

// The reliability harness: real escale processes (one per client) syncing
// through a real relay server, a driver that edits their folders and keeps a
// ledger of every version it saves, kill -9 at random moments, and a checker
// that brings every client to rest and verifies what must have survived.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/engine"
	"github.com/escale-sync/escale/pkg/storage"
)

// tempPrefix is escale's temp file prefix (pkg/localfs.DefaultTempPrefix),
// restated so the check does not trust the code it checks.
const tempPrefix = ".escale-tmp-"

// seedFor returns the seed of a scenario: ESCALE_TORTURE_SEED when set, else
// a fresh one; it is logged so a failure can be replayed.
func seedFor(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ESCALE_TORTURE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ESCALE_TORTURE_SEED=%q: want an unsigned integer", s)
		}
		seed = v
	}
	t.Logf("seed %d (replay with ESCALE_TORTURE_SEED=%d)", seed, seed)
	return seed
}

// fullTorture reports whether `make torture` asked for the long runs.
func fullTorture() bool { return os.Getenv("ESCALE_TORTURE") == "full" }

// world is one repository: its relay and its clients.
type world struct {
	t        *testing.T
	root     string
	spec     string // the relay spec every client uses
	relayDir string // where the relay's bytes are on local disk
	clients  []*client
	led      *ledger
	seed     uint64
	// settle is the clients' settle time: "0s" unless a scenario needs
	// escale's default (a test that writes and syncs at once would wait).
	settle string

	mu      sync.Mutex
	kills   int
	exit143 int // daemons that exited 143 instead of 0 on SIGTERM
}

// client is one escale client: its configuration, folder, state and, while
// it runs, its daemon process.
type client struct {
	w       *world
	name    string
	dir     string
	conf    string
	folder  string
	state   string // state_dir
	scratch string // the driver's own temp files, on the folder's filesystem
	logPath string
	extra   string // extra repository keys for the TOML
	uid     int    // run escale as this user when not 0

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	rng  *mrand.Rand // the driver's, for this client
}

// newWorld makes n clients of a repository on the relay spec, whose bytes are
// at relayDir. extra is appended to every client's repository table.
func newWorld(t *testing.T, spec, relayDir string, n int, seed uint64, extra string) *world {
	t.Helper()
	w := &world{t: t, root: t.TempDir(), spec: spec, relayDir: relayDir, led: newLedger(), seed: seed}
	if err := os.WriteFile(filepath.Join(w.root, "pass"), []byte("torture words\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		w.addClient(fmt.Sprintf("c%d", i), extra)
	}
	t.Cleanup(func() {
		for _, c := range w.clients {
			c.kill()
		}
		if t.Failed() {
			for _, c := range w.clients {
				t.Logf("last lines of %s's log:\n%s", c.name, tail(c.logPath, 40))
			}
		}
	})
	return w
}

func (w *world) addClient(name, extra string) *client {
	w.t.Helper()
	dir := filepath.Join(w.root, name)
	c := &client{w: w, name: name, dir: dir, folder: filepath.Join(dir, "folder"), state: filepath.Join(dir, "state"),
		scratch: filepath.Join(dir, "scratch"), conf: filepath.Join(dir, "escale.toml"), logPath: filepath.Join(dir, "escale.log"), extra: extra,
		rng: mrand.New(mrand.NewPCG(w.seed, uint64(len(w.clients))+1))}
	for _, d := range []string{c.folder, c.scratch} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			w.t.Fatal(err)
		}
	}
	c.writeConfig()
	w.clients = append(w.clients, c)
	return c
}

func (c *client) writeConfig() {
	settle := c.w.settle
	if settle == "" {
		settle = "0s"
	}
	body := fmt.Sprintf(`state_dir = %q
log_level = "info"
settle = %q
[repository.r]
path = %q
relay = %q
client = %q
passphrase_file = %q
min_poll = "200ms"
max_poll = "1s"
%s
`, c.state, settle, c.folder, c.w.spec, c.name, filepath.Join(c.w.root, "pass"), c.extra)
	if err := os.WriteFile(c.conf, []byte(body), 0o644); err != nil {
		c.w.t.Fatal(err)
	}
}

// trashDir is where the engine keeps replaced and deleted files
// (README: state_dir/NAME/trash).
func (c *client) trashDir() string { return filepath.Join(c.state, "r", "trash") }

// escale runs one escale command for this client and returns its output and
// exit code; a command still running after limit is killed (code -1).
func (c *client) escale(limit time.Duration, args ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, escaleBin, append([]string{"--config", c.conf}, args...)...)
	cmd.Env = scrubbedEnv()
	c.as(cmd)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			c.w.t.Fatalf("run escale %v: %v", args, err)
		}
	}
	return string(out), code
}

// as makes cmd run as the client's user.
func (c *client) as(cmd *exec.Cmd) {
	if c.uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(c.uid), Gid: uint32(c.uid)}}
		cmd.Env = append(cmd.Env, "HOME="+c.dir, "XDG_CACHE_HOME="+c.dir, "XDG_CONFIG_HOME="+c.dir)
	}
}

// status reads `escale status --json` for this client's repository.
func (c *client) status() map[string]any {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, escaleBin, "--config", c.conf, "status", "--json")
	cmd.Env = scrubbedEnv()
	out, _ := cmd.Output() // exit code 1 when the last round failed
	var sts []map[string]any
	if err := json.Unmarshal(out, &sts); err != nil || len(sts) != 1 {
		c.w.t.Fatalf("%s: status --json: %v\n%s", c.name, err, out)
	}
	return sts[0]
}

// start runs the daemon (`escale sync`), its output appended to the log.
func (c *client) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return
	}
	f, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.w.t.Fatal(err)
	}
	fmt.Fprintf(f, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(escaleBin, "--config", c.conf, "sync")
	cmd.Stdout, cmd.Stderr, cmd.Env = f, f, scrubbedEnv()
	c.as(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		c.w.t.Fatalf("start %s: %v", c.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	c.cmd, c.done = cmd, done
}

// kill9 kills the daemon with SIGKILL and reports whether it was running.
func (c *client) kill9() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return false
	}
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	c.cmd = nil
	return true
}

// stop asks the daemon to stop (SIGTERM), killing it if it takes over a
// minute, and returns how it ended.
func (c *client) stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(time.Minute):
		c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.done
		c.cmd = nil
		return fmt.Errorf("%s did not stop within a minute of SIGTERM", c.name)
	}
	st := c.cmd.ProcessState
	c.cmd = nil
	if st.ExitCode() == 143 {
		// rclone's lib/atexit exits 143 on SIGTERM while a transfer runs
		// (see TestSigtermStopsCleanly); counted, not failed, until fixed.
		c.w.mu.Lock()
		c.w.exit143++
		c.w.mu.Unlock()
		return nil
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
		// A daemon the killer had just restarted gets SIGTERM before it
		// installed its handler: the default action ends it, as kill -9
		// would, and the checks cover that.
		return nil
	}
	if !st.Success() {
		return fmt.Errorf("%s stopped with %v", c.name, st)
	}
	return nil
}

func (c *client) kill() { c.kill9() }

func (w *world) startAll() {
	for _, c := range w.clients {
		c.start()
	}
}

// create runs a first round on the first client so the daemons do not race
// to create the repository.
func (w *world) create() {
	w.t.Helper()
	if out, code := w.clients[0].escale(2*time.Minute, "sync", "--once"); code != 0 {
		w.t.Fatalf("first round: exit %d\n%s", code, out)
	}
}

// killer kills a random running client every 0.3-1.5 s (from its own seeded
// generator), restarts it 0-400 ms later, and stops after kills kills or when
// ctx ends. It returns how many it made.
func (w *world) killer(ctx context.Context, kills int) int {
	rng := mrand.New(mrand.NewPCG(w.seed, 99))
	n := 0
	for n < kills {
		select {
		case <-ctx.Done():
			return n
		case <-time.After(time.Duration(250+rng.IntN(900)) * time.Millisecond):
		}
		c := w.clients[rng.IntN(len(w.clients))]
		if c.kill9() {
			n++
			w.mu.Lock()
			w.kills++
			w.mu.Unlock()
		}
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		c.start()
	}
	return n
}

// ---- the ledger ----

// version is one content the driver saved in a client's folder.
type version struct {
	client, path, hash string
	// superseded: the same client's driver later overwrote or deleted it
	// there, so escale may never have seen it and it may be gone.
	superseded bool
}

type ledger struct {
	mu     sync.Mutex
	list   []*version
	byHash map[string]*version
	serial int
}

func newLedger() *ledger { return &ledger{byHash: map[string]*version{}} }

func (l *ledger) next() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.serial++
	return l.serial
}

func (l *ledger) add(v *version) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, v)
	l.byHash[v.hash] = v
}

// supersede marks the version with content hash as replaced by its own
// client's driver, when client is its author.
func (l *ledger) supersede(client, hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if v := l.byHash[hash]; v != nil && v.client == client {
		v.superseded = true
	}
}

func (l *ledger) known(hash string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byHash[hash] != nil
}

func hashBytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ---- the driver ----

// content makes a unique version: a header naming it, then random bytes,
// mostly small, sometimes over escale's 1 MiB small-file threshold.
func (c *client) content(path string, big bool) []byte {
	id := c.w.led.next()
	size := c.rng.IntN(6 << 10)
	switch r := c.rng.IntN(100); {
	case big && r < 4:
		size = 1<<20 + c.rng.IntN(1<<20)
	case r < 12:
		size = 16<<10 + c.rng.IntN(128<<10)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "version %d by %s at %s\n", id, c.name, path)
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte('a' + c.rng.IntN(26))
	}
	b.Write(buf)
	return b.Bytes()
}

// save writes data at rel like an editor does (a temp file outside the
// folder, then a rename), so escale never sees a half-written version, and
// records it.
func (c *client) save(rel string, data []byte) error {
	abs := filepath.Join(c.folder, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(c.scratch, "save-")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if old, err := hashFile(abs); err == nil {
		c.w.led.supersede(c.name, old)
	}
	if err := os.Rename(tmp.Name(), abs); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	c.w.led.add(&version{client: c.name, path: rel, hash: hashBytes(data)})
	return nil
}

var driverDirs = []string{"", "", "docs", "docs/deep", "media"}

// files lists the regular files of the folder (slash paths), skipping
// escale's temps.
func (c *client) files() []string {
	var out []string
	filepath.WalkDir(c.folder, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		rel, _ := filepath.Rel(c.folder, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(out)
	return out
}

// step makes one random user action in the client's folder: create, edit,
// delete or rename. Errors from races with escale (a file moved away
// meanwhile) are part of the game and ignored.
func (c *client) step(big bool) string {
	files := c.files()
	r := c.rng.IntN(100)
	switch {
	case len(files) == 0 || r < 35: // create (or overwrite) a path from a small namespace, so clients collide
		rel := fmt.Sprintf("f%d.txt", c.rng.IntN(12))
		if d := driverDirs[c.rng.IntN(len(driverDirs))]; d != "" {
			rel = d + "/" + rel
		}
		c.save(rel, c.content(rel, big))
		return "create " + rel
	case r < 75: // edit
		rel := files[c.rng.IntN(len(files))]
		c.save(rel, c.content(rel, big))
		return "edit " + rel
	case r < 90: // delete
		rel := files[c.rng.IntN(len(files))]
		abs := filepath.Join(c.folder, filepath.FromSlash(rel))
		if h, err := hashFile(abs); err == nil {
			c.w.led.supersede(c.name, h)
		}
		os.Remove(abs)
		return "delete " + rel
	default: // rename to a new name in another folder
		rel := files[c.rng.IntN(len(files))]
		to := fmt.Sprintf("r%d.txt", c.rng.IntN(1000))
		if d := driverDirs[c.rng.IntN(len(driverDirs))]; d != "" {
			to = d + "/" + to
		}
		dst := filepath.Join(c.folder, filepath.FromSlash(to))
		if _, err := os.Lstat(dst); err == nil {
			return "rename skipped"
		}
		os.MkdirAll(filepath.Dir(dst), 0o755)
		os.Rename(filepath.Join(c.folder, filepath.FromSlash(rel)), dst)
		return "rename " + rel + " -> " + to
	}
}

// drive makes steps on random clients, 20-250 ms apart, until ctx ends or
// steps steps are made; it returns how many it made.
func (w *world) drive(ctx context.Context, steps int, big bool) int {
	rng := mrand.New(mrand.NewPCG(w.seed, 7))
	for i := range steps {
		select {
		case <-ctx.Done():
			return i
		case <-time.After(time.Duration(20+rng.IntN(230)) * time.Millisecond):
		}
		w.clients[rng.IntN(len(w.clients))].step(big)
	}
	return steps
}

// ---- convergence and checks ----

// tree maps each regular file of dir (slash path) to its content hash.
func tree(dir string) map[string]string {
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		h := "non-regular"
		if d.Type().IsRegular() {
			if h, err = hashFile(p); err != nil {
				h = "unreadable: " + err.Error()
			}
		}
		out[filepath.ToSlash(rel)] = h
		return nil
	})
	return out
}

// relayFiles lists the relay's objects on disk (slash paths).
func (w *world) relayFiles() []string {
	var out []string
	filepath.WalkDir(w.relayDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(w.relayDir, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(out)
	return out
}

// snapshot is everything a pass of rounds could change.
func (w *world) snapshot() string {
	var b strings.Builder
	for _, c := range w.clients {
		m := tree(c.folder)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "[%s]\n", c.name)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s %s\n", k, m[k])
		}
	}
	b.WriteString("[relay]\n" + strings.Join(w.relayFiles(), "\n"))
	return b.String()
}

// converge stops the daemons, then runs `escale sync --once` on each client
// in turn until two whole passes change nothing (at most maxPasses passes).
// It returns the number of passes and the last exit code of each client.
func (w *world) converge(maxPasses int) (int, map[string]int) {
	w.t.Helper()
	for _, c := range w.clients {
		if err := c.stop(); err != nil {
			w.t.Errorf("stopping the daemon: %v\n%s", err, tail(c.logPath, 30))
		}
	}
	// A file written just before the stop waits out escale's settle time
	// (it could be mid-rewrite); after it, every pass sees all there is.
	time.Sleep(engine.DefaultSettle + 200*time.Millisecond)
	codes := map[string]int{}
	quiet := 0
	prev := w.snapshot()
	for pass := 1; pass <= maxPasses; pass++ {
		for _, c := range w.clients {
			out, code := c.escale(3*time.Minute, "sync", "--once")
			codes[c.name] = code
			if code != 0 {
				w.t.Logf("pass %d, %s: exit %d: %s", pass, c.name, code, strings.TrimSpace(out))
			}
		}
		cur := w.snapshot()
		if cur == prev {
			quiet++
		} else {
			quiet = 0
		}
		prev = cur
		if quiet == 2 {
			return pass, codes
		}
	}
	w.t.Errorf("no rest after %d passes of sync --once", maxPasses)
	return maxPasses, codes
}

// verdict is what the checker found.
type verdict struct {
	Versions, Checked, Lost, Found int
}

// check verifies the four properties on clients at rest: identical trees on
// shared clients, every ledger version still somewhere, no temp or torn file
// in any folder, no data left on the relay.
func (w *world) check(shared []*client) verdict {
	w.t.Helper()
	var v verdict
	// 1. identical trees.
	diverged := false
	for i := 1; i < len(shared); i++ {
		if d := diffTrees(tree(shared[0].folder), tree(shared[i].folder)); d != "" {
			w.t.Errorf("%s and %s differ at rest:\n%s", shared[0].name, shared[i].name, d)
			diverged = true
		}
	}
	if diverged {
		// What each client believes: its updates, acknowledgements and
		// waits; what it put in its trash; the relay's logs, indexes and heads.
		for _, c := range w.clients {
			b, _ := json.Marshal(c.status())
			w.t.Logf("%s status: %s", c.name, b)
			var trashed []string
			for p := range tree(c.trashDir()) {
				trashed = append(trashed, p)
			}
			sort.Strings(trashed)
			w.t.Logf("%s trash: %v", c.name, trashed)
		}
		w.t.Logf("relay:\n%s", strings.Join(w.relayFiles(), "\n"))
	}
	// 2. every version is a current file, a conflict copy or in a trash.
	have := map[string]string{}
	for _, c := range w.clients {
		for p, h := range tree(c.folder) {
			have[h] = c.name + ":" + p
			// 3. no temp or partial file.
			if strings.HasPrefix(pathBase(p), tempPrefix) {
				w.t.Errorf("%s: escale temp file left in the folder: %s", c.name, p)
			} else if !w.led.known(h) {
				w.t.Errorf("%s: %s holds content the driver never wrote (torn or partial file)", c.name, p)
			}
		}
		for p, h := range tree(c.trashDir()) {
			if _, ok := have[h]; !ok {
				have[h] = c.name + ":trash/" + p
			}
		}
	}
	w.led.mu.Lock()
	for _, ver := range w.led.list {
		v.Versions++
		if _, ok := have[ver.hash]; ok && ver.superseded {
			v.Found++
		}
		if ver.superseded {
			continue
		}
		v.Checked++
		if _, ok := have[ver.hash]; !ok {
			v.Lost++
			w.t.Errorf("lost version: %s wrote %s (sha256 %s…); it is in no folder and no trash", ver.client, ver.path, ver.hash[:12])
		}
	}
	w.led.mu.Unlock()
	// 4. the relay holds no data once every puller caught up.
	left := false
	for _, f := range w.relayFiles() {
		if strings.Contains(f, "/data/") {
			w.t.Errorf("relay still holds data after every client caught up: %s (the server lists it: %v)", f, w.serverShows(f))
			left = true
		}
	}
	if left {
		// What pins it: each client's pending updates and acknowledgements,
		// and the relay's logs and heads.
		for _, c := range w.clients {
			b, _ := json.Marshal(c.status())
			w.t.Logf("%s status: %s", c.name, b)
		}
		w.t.Logf("relay:\n%s", strings.Join(w.relayFiles(), "\n"))
	}
	w.t.Logf("versions written %d, checked %d (lost %d); superseded ones found anyway %d", v.Versions, v.Checked, v.Lost, v.Found)
	return v
}

// serverShows reports whether the relay server shows a file it holds on its
// disk: rclone's servers answer from a directory cache.
func (w *world) serverShows(rel string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := storage.Open(ctx, w.spec)
	if err != nil {
		w.t.Errorf("open the relay to check %s: %v", rel, err)
		return false
	}
	defer r.Close()
	_, err = r.Stat(ctx, rel)
	return err == nil
}

func pathBase(p string) string { return p[strings.LastIndex(p, "/")+1:] }

func diffTrees(a, b map[string]string) string {
	var out []string
	for k, h := range a {
		if g, ok := b[k]; !ok {
			out = append(out, "only first: "+k)
		} else if g != h {
			out = append(out, "content differs: "+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, "only second: "+k)
		}
	}
	sort.Strings(out)
	if len(out) > 30 {
		out = append(out[:30], fmt.Sprintf("... %d more", len(out)-30))
	}
	return strings.Join(out, "\n")
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
