package engine

// The model test's harness: clients on one relay reached through the
// escalefaulty rclone backend, user actions that keep a ledger of every
// version saved, crashes, and the checks of the protocol's invariants.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/localfs"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/storage"
	"github.com/escale-sync/escale/pkg/storage/faulty"
)

// modelTB is what the harness needs of *testing.T and *rapid.T.
type modelTB interface {
	Helper()
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// modelEpoch starts the logical clock that gives files their mtimes.
var modelEpoch = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

var modelIDs atomic.Int64

// modelWorld is a relay folder wrapped by the fault injector, and the
// clients syncing through it.
type modelWorld struct {
	t        modelTB
	root     string
	relayDir string
	inj      *faulty.Injector
	spec     string
	clients  []*modelClient
	now      func() time.Time // the engines' clock
	ledger   map[string]*modelVersion
	versions int            // versions written so far: makes every content unique
	used     map[int64]bool // mtimes (Unix seconds) already given out
	clock    int64          // the logical clock, in seconds after modelEpoch
	logger   *slog.Logger
	// strictStale: superseded metadata (an older head next to a newer one of
	// the same client and kind, an older index generation) fails
	// checkRelayEmpty.
	strictStale bool
	// lenientConservative: do not check that a conservative client keeps
	// its own files.
	lenientConservative bool
}

// modelVersion is one version a user saved.
type modelVersion struct {
	n            int
	path, author string
	// exempt: its author replaced or deleted it on its own machine, so no
	// client has to keep it.
	exempt bool
}

type modelClient struct {
	w    *modelWorld
	name string
	dir  string
	// mine is what this client's user put in the folder: path → content
	// hash. Checked for the modes that must keep it (upload, conservative).
	mine    map[string]string
	opts    Options
	relay   *storage.Relay
	e       *Engine
	crashes int
}

// modelSpec describes one client of a world.
type modelSpec struct {
	name  string
	mode  Mode
	tweak func(*Options)
}

func newModelWorld(t modelTB, root string, specs []modelSpec) *modelWorld {
	t.Helper()
	w := &modelWorld{t: t, root: root, relayDir: filepath.Join(root, "relay"), inj: faulty.New(),
		now: time.Now, ledger: map[string]*modelVersion{}, used: map[int64]bool{}}
	if err := os.MkdirAll(w.relayDir, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	var unregister func()
	w.spec, unregister = faulty.Register(fmt.Sprintf("model-%d", modelIDs.Add(1)), w.inj, w.relayDir)
	t.Cleanup(unregister)
	// ESCALE_MODEL_LOG=debug (or info) shows more of the engines' logs in a
	// failure's output.
	level := slog.LevelWarn
	level.UnmarshalText([]byte(os.Getenv("ESCALE_MODEL_LOG")))
	w.logger = slog.New(slog.NewTextHandler(modelLog{t}, &slog.HandlerOptions{Level: level}))
	t.Cleanup(func() {
		for _, c := range w.clients {
			c.close()
		}
	})
	for _, s := range specs {
		w.addClient(s)
	}
	return w
}

// addClient starts a client on the world's relay.
func (w *modelWorld) addClient(s modelSpec) *modelClient {
	t := w.t
	t.Helper()
	c := &modelClient{w: w, name: s.name, dir: filepath.Join(w.root, s.name), mine: map[string]string{}}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	c.opts = Options{
		Name: "model", Path: c.dir, Client: s.name, Mode: s.mode,
		StateDir:    filepath.Join(w.root, "state-"+s.name),
		Encrypted:   true,
		Credentials: protocol.Credentials{Passphrase: "model passphrase"},
		KeyOptions:  []envelope.Option{envelope.WithScryptWorkFactor(10)},
		Logger:      w.logger.With("client", s.name),
		Now:         func() time.Time { return w.now() },
	}
	if s.tweak != nil {
		s.tweak(&c.opts)
	}
	c.open()
	w.clients = append(w.clients, c)
	return c
}

type modelLog struct{ t modelTB }

func (l modelLog) Write(p []byte) (int, error) {
	l.t.Logf("    %s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// open starts the client's process: a relay and an engine on its state.
func (c *modelClient) open() {
	t := c.w.t
	t.Helper()
	relay, err := storage.Open(context.Background(), c.w.spec,
		storage.WithRetries(3), storage.WithBackoff(time.Millisecond, 4*time.Millisecond))
	if err != nil {
		t.Fatalf("open the relay for %s: %v", c.name, err)
	}
	e, err := New(context.Background(), relay, c.opts)
	if err != nil {
		relay.Close()
		t.Fatalf("restart %s: %v", c.name, err)
	}
	c.relay, c.e = relay, e
}

func (c *modelClient) close() {
	if c.e != nil {
		c.e.Close()
		c.relay.Close()
		c.e, c.relay = nil, nil
	}
}

// crash ends the client's process between two calls and starts a new one on
// the same folder and state.
func (c *modelClient) crash() {
	c.w.t.Helper()
	c.crashes++
	c.close()
	c.open()
}

func (c *modelClient) round() (*Result, error) {
	return c.e.Round(context.Background())
}

// mustRound runs a round that must succeed: no fault is armed.
func (c *modelClient) mustRound() *Result {
	c.w.t.Helper()
	res, err := c.round()
	if err != nil {
		c.w.t.Fatalf("round of %s failed with no fault armed: %v", c.name, err)
	}
	return res
}

// mtime gives out a new mtime: usually the next second of the logical
// clock, sometimes one in the past (a file restored from a backup, a skewed
// clock), never one given out before, so conflicts have no ties.
func (w *modelWorld) mtime(back int) time.Time {
	w.clock++
	s := w.clock - int64(back)
	for w.used[s] {
		s++
	}
	w.used[s] = true
	return modelEpoch.Add(time.Duration(s) * time.Second)
}

// content is the body of a new version of path: unique, small and
// compressible, or big (over SmallFile, so chunked) and random. A big edit
// of a big file changes its header and one region, so most chunks stay.
func (w *modelWorld) content(path string, big bool, old []byte, region int) []byte {
	w.versions++
	header := fmt.Sprintf("%s version %d\n", path, w.versions)
	if !big {
		return []byte(header + strings.Repeat("line of text\n", region%200))
	}
	rng := mrand.New(mrand.NewChaCha8([32]byte{byte(w.versions), byte(w.versions >> 8), 'm'}))
	if len(old) > SmallFile {
		body := append([]byte(nil), old...)
		copy(body, header)
		off := len(header) + region*997%(len(body)-len(header)-4096)
		for i := off; i < off+4096; i++ {
			body[i] = byte(rng.Uint32())
		}
		return body
	}
	body := make([]byte, SmallFile+64<<10+region*1024)
	for i := range body {
		body[i] = byte(rng.Uint32())
	}
	copy(body, header)
	return body
}

func contentHash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// abs is path in the client's folder.
func (c *modelClient) abs(path string) string { return filepath.Join(c.dir, filepath.FromSlash(path)) }

// replacing records that the user is about to replace or delete what the
// folder holds at path: if this client authored it, nobody has to keep it.
func (c *modelClient) replacing(path string) {
	data, err := os.ReadFile(c.abs(path))
	if err != nil {
		return
	}
	if v := c.w.ledger[contentHash(data)]; v != nil && v.author == c.name {
		v.exempt = true
	}
}

// write saves a new version of path, keeping an existing file's mode.
func (c *modelClient) write(path string, data []byte, mtime time.Time) {
	t := c.w.t
	t.Helper()
	c.replacing(path)
	p := c.abs(path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatalf("%v", err)
	}
	h := contentHash(data)
	c.w.ledger[h] = &modelVersion{n: c.w.versions, path: path, author: c.name}
	c.mine[path] = h
}

func (c *modelClient) exists(path string) bool {
	fi, err := os.Lstat(c.abs(path))
	return err == nil && fi.Mode().IsRegular()
}

func (c *modelClient) remove(path string) {
	c.replacing(path)
	if err := os.Remove(c.abs(path)); err != nil {
		c.w.t.Fatalf("%v", err)
	}
	delete(c.mine, path)
}

func (c *modelClient) rename(from, to string) {
	t := c.w.t
	t.Helper()
	c.replacing(to)
	if err := os.MkdirAll(filepath.Dir(c.abs(to)), 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	data, err := os.ReadFile(c.abs(from))
	if err != nil {
		t.Fatalf("%v", err)
	}
	if err := os.Rename(c.abs(from), c.abs(to)); err != nil {
		t.Fatalf("%v", err)
	}
	delete(c.mine, from)
	c.mine[to] = contentHash(data)
}

// toggleExec flips the executable bit; content and mtime stay.
func (c *modelClient) toggleExec(path string) {
	fi, err := os.Stat(c.abs(path))
	if err != nil {
		c.w.t.Fatalf("%v", err)
	}
	mode := os.FileMode(0o755)
	if fi.Mode()&0o100 != 0 {
		mode = 0o644
	}
	if err := os.Chmod(c.abs(path), mode); err != nil {
		c.w.t.Fatalf("%v", err)
	}
	data, err := os.ReadFile(c.abs(path))
	if err != nil {
		c.w.t.Fatalf("%v", err)
	}
	c.mine[path] = contentHash(data) // an edit here, if only of the mode
}

// settle runs rounds on every client, with no fault armed, until two sweeps
// in a row move nothing and wait for nothing.
func (w *modelWorld) settle(maxSweeps int) {
	w.t.Helper()
	w.inj.Disarm()
	quiet := 0
	var last []string
	for sweep := 0; sweep < maxSweeps; sweep++ {
		last = nil
		for _, c := range w.clients {
			res := c.mustRound()
			if res.Busy() || len(res.Waiting) > 0 {
				last = append(last, fmt.Sprintf("%s: %+v", c.name, *res))
			}
		}
		if len(last) > 0 {
			quiet = 0
			continue
		}
		if quiet++; quiet == 2 {
			w.t.Logf("settled after %d sweeps", sweep+1)
			return
		}
	}
	w.t.Fatalf("the clients did not settle in %d sweeps; the last one still did: %s", maxSweeps, strings.Join(last, "; "))
}

// modelFile is one file of a folder as convergence compares it: content,
// executable bit and mtime to the second.
type modelFile struct {
	hash  string
	exec  bool
	mtime int64
}

func (f modelFile) String() string {
	return fmt.Sprintf("%.8s exec=%v mtime=%s", f.hash, f.exec, time.Unix(f.mtime, 0).UTC().Format(time.RFC3339))
}

// snapshot reads a folder (or a trash): every file, symlinks as their target.
func snapshot(t modelTB, dir string) map[string]modelFile {
	t.Helper()
	out := map[string]modelFile{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == dir {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		var data []byte
		if fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			data = []byte("link:" + target)
		} else if data, err = os.ReadFile(p); err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = modelFile{hash: contentHash(data), exec: fi.Mode()&0o111 != 0, mtime: fi.ModTime().Unix()}
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	return out
}

func (c *modelClient) trashDir() string { return filepath.Join(c.opts.StateDir, "trash") }

// checkInvariants checks, after settle, the invariants of
// shared/design/PROTOCOL.md that hold whatever the history was.
func (w *modelWorld) checkInvariants() {
	w.t.Helper()
	w.checkConvergence()
	w.checkNothingLost()
	w.checkRelayEmpty()
	w.checkNoTemps()
	w.checkModes()
}

// checkModes checks what each mode promises: an upload client never writes
// locally, a download client never publishes, a conservative client never
// overwrites a file its user put there.
func (w *modelWorld) checkModes() {
	t := w.t
	t.Helper()
	for _, c := range w.clients {
		switch c.opts.Mode {
		case Upload:
			got := snapshot(t, c.dir)
			for p, f := range got {
				if c.mine[p] != f.hash {
					t.Fatalf("upload client %s: the engine wrote %s (%s)", c.name, p, f)
				}
			}
			for p := range c.mine {
				if _, ok := got[p]; !ok {
					t.Fatalf("upload client %s: the engine removed %s", c.name, p)
				}
			}
		case Download:
			heads, err := filepath.Glob(filepath.Join(w.relayDir, protocol.HeadsDir, c.e.CID()+".*"))
			if err != nil {
				t.Fatalf("%v", err)
			}
			for _, h := range heads {
				if _, kind, _ := strings.Cut(filepath.Base(h), "."); kind != "" && kind[0] >= '0' && kind[0] <= '9' {
					t.Fatalf("download client %s published: %s", c.name, h)
				}
			}
		case Conservative:
			if w.lenientConservative {
				continue
			}
			got := snapshot(t, c.dir)
			for p, h := range c.mine {
				if f, ok := got[p]; !ok || f.hash != h {
					t.Fatalf("conservative client %s: its own %s (%.8s) was overwritten or removed: now %v", c.name, p, h, f)
				}
			}
		}
	}
}

// checkConvergence: every shared client has the same tree.
func (w *modelWorld) checkConvergence() {
	t := w.t
	t.Helper()
	var ref *modelClient
	var refTree map[string]modelFile
	for _, c := range w.clients {
		if c.opts.Mode != Shared {
			continue
		}
		tree := snapshot(t, c.dir)
		if ref == nil {
			ref, refTree = c, tree
			continue
		}
		var diffs []string
		for p, f := range refTree {
			if g, ok := tree[p]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s: %s has %s, %s has nothing", p, ref.name, f, c.name))
			} else if g != f {
				diffs = append(diffs, fmt.Sprintf("%s: %s has %s, %s has %s", p, ref.name, f, c.name, g))
			}
		}
		for p, g := range tree {
			if _, ok := refTree[p]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s: %s has nothing, %s has %s", p, ref.name, c.name, g))
			}
		}
		if len(diffs) > 0 {
			sort.Strings(diffs)
			w.logStates(diffs)
			t.Fatalf("shared clients did not converge:\n  %s", strings.Join(diffs, "\n  "))
		}
	}
}

// logStates logs every client's local state of the paths the diffs name,
// for the diagnosis of a convergence failure.
func (w *modelWorld) logStates(diffs []string) {
	for _, d := range diffs {
		p, _, _ := strings.Cut(d, ":")
		for _, c := range w.clients {
			st, err := c.e.loadState(p)
			if err != nil || st == nil {
				w.t.Logf("state of %s on %s: %v %v", p, c.name, st, err)
				continue
			}
			w.t.Logf("state of %s on %s: kind %s version %v by %s hash %.8s mtime %s", p, c.name, st.Kind, st.Version, st.By, st.Hash,
				time.Unix(0, st.MTime).UTC().Format(time.RFC3339))
		}
	}
}

// checkNothingLost: every version saved, unless its own author replaced it,
// is still a file somewhere (current or conflict copy) or in a trash.
func (w *modelWorld) checkNothingLost() {
	t := w.t
	t.Helper()
	have := map[string]string{}
	for _, c := range w.clients {
		for p, f := range snapshot(t, c.dir) {
			have[f.hash] = c.name + ":" + p
		}
		for p, f := range snapshot(t, c.trashDir()) {
			have[f.hash] = c.name + " trash:" + p
		}
	}
	var lost []string
	for h, v := range w.ledger {
		if _, ok := have[h]; !ok && !v.exempt {
			lost = append(lost, fmt.Sprintf("version %d of %s saved by %s", v.n, v.path, v.author))
		}
	}
	if len(lost) > 0 {
		sort.Strings(lost)
		t.Fatalf("versions lost (neither a file, a conflict copy nor in a trash): %s", strings.Join(lost, "; "))
	}
}

// relayLeft reports relay objects other than the steady-state metadata:
// data and manifests (left), and superseded generations of metadata (stale:
// an older index root or page, an older head of the same client and kind).
func (w *modelWorld) relayLeft() (left, stale []string) {
	latest := map[string]string{} // object family → newest name
	family := func(rel, fam string) {
		if old, ok := latest[fam]; ok {
			stale = append(stale, min(old, rel))
			rel = max(old, rel)
		}
		latest[fam] = rel
	}
	filepath.WalkDir(w.relayDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(w.relayDir, p)
		rel = filepath.ToSlash(rel)
		parts := strings.Split(rel, "/")
		switch {
		case rel == protocol.MarkerName:
		case len(parts) == 2 && parts[0] == protocol.KeysDir:
		case len(parts) == 2 && parts[0] == protocol.HeadsDir:
			// <cid>.<seq>, <cid>.a<gen>, <cid>.w<gen>: one of each kind.
			cid, kind, _ := strings.Cut(parts[1], ".")
			if len(kind) > 0 && kind[0] >= 'a' && kind[0] <= 'z' {
				kind = kind[:1]
			} else {
				kind = "m"
			}
			family(rel, "heads/"+cid+"."+kind)
		case len(parts) == 3 && parts[0] == protocol.ClientsDir && (parts[2] == "info" || parts[2] == "acks" || parts[2] == "wants"):
		case len(parts) == 4 && parts[0] == protocol.ClientsDir && parts[2] == "index":
			page, _, _ := strings.Cut(parts[3], ".")
			family(rel, parts[1]+"/index/"+page)
		default:
			left = append(left, rel)
		}
		return nil
	})
	sort.Strings(left)
	sort.Strings(stale)
	return left, stale
}

// checkRelayEmpty: once every puller has everything and every pusher has
// collected, the relay holds only metadata, one generation of each. Stale
// generations are only logged unless strictStale, while the engine bug
// that leaves them stands (TestModelStaleMetadataAfterFailedDelete).
func (w *modelWorld) checkRelayEmpty() {
	w.t.Helper()
	left, stale := w.relayLeft()
	if len(stale) > 0 {
		if w.strictStale {
			left = append(left, stale...)
		} else {
			w.t.Logf("superseded metadata left on the relay (known engine bug): %s", strings.Join(stale, ", "))
		}
	}
	if len(left) > 0 {
		w.t.Fatalf("the relay still holds %d objects after every puller acknowledged: %s", len(left), strings.Join(left, ", "))
	}
}

// checkNoTemps: no temp file is visible in a synced folder.
func (w *modelWorld) checkNoTemps() {
	w.t.Helper()
	for _, c := range w.clients {
		for p := range snapshot(w.t, c.dir) {
			if strings.Contains(p, localfs.DefaultTempPrefix) {
				w.t.Fatalf("%s: temp file %s left in the folder", c.name, p)
			}
		}
	}
}

// relayUsage is the size of everything under clients/ on the relay, as the
// quota counts it (PROTOCOL.md §12).
func (w *modelWorld) relayUsage() int64 {
	var n int64
	filepath.WalkDir(filepath.Join(w.relayDir, protocol.ClientsDir), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
