package engine

// Helpers of the hostile-relay suite (attack_test.go): a relay the test edits
// behind the clients' backs, rounds that must be refused, and checks that a
// refused round changed nothing on disk.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/storage"
)

// relayFiles returns every file of the relay folder: relay name → bytes.
func (w *world) relayFiles() map[string][]byte {
	w.t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(w.relay, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(w.relay, p)
		out[filepath.ToSlash(rel)] = data
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

// restoreRelay makes the relay folder hold exactly snap, as a backup restore
// (or a rollback by the storage) would.
func (w *world) restoreRelay(snap map[string][]byte) {
	w.t.Helper()
	if err := os.RemoveAll(w.relay); err != nil {
		w.t.Fatal(err)
	}
	if err := os.MkdirAll(w.relay, 0o755); err != nil {
		w.t.Fatal(err)
	}
	for name, data := range snap {
		w.putRaw(name, data)
	}
}

func (w *world) abs(name string) string { return filepath.Join(w.relay, filepath.FromSlash(name)) }

// getRaw reads a relay object as stored.
func (w *world) getRaw(name string) []byte {
	w.t.Helper()
	data, err := os.ReadFile(w.abs(name))
	if err != nil {
		w.t.Fatalf("relay object %s: %v", name, err)
	}
	return data
}

// putRaw writes a relay object behind the clients' backs.
func (w *world) putRaw(name string, data []byte) {
	w.t.Helper()
	p := w.abs(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// list returns the relay names under dir (one level), sorted.
func (w *world) list(dir string) []string {
	w.t.Helper()
	entries, err := os.ReadDir(w.abs(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, dir+"/"+e.Name())
	}
	sort.Strings(out)
	return out
}

// tamper changes relay objects and remembers their original bytes, so the
// relay can be repaired exactly.
type tamper struct {
	w    *world
	orig map[string][]byte // nil: the object did not exist
}

func (w *world) tamper() *tamper { return &tamper{w: w, orig: map[string][]byte{}} }

func (tp *tamper) save(name string) {
	if _, ok := tp.orig[name]; ok {
		return
	}
	data, err := os.ReadFile(tp.w.abs(name))
	if errors.Is(err, fs.ErrNotExist) {
		tp.orig[name] = nil
		return
	}
	if err != nil {
		tp.w.t.Fatal(err)
	}
	tp.orig[name] = data
}

func (tp *tamper) put(name string, data []byte) {
	tp.save(name)
	tp.w.putRaw(name, data)
}

func (tp *tamper) remove(name string) {
	tp.save(name)
	if err := os.Remove(tp.w.abs(name)); err != nil {
		tp.w.t.Fatal(err)
	}
}

// edit replaces name's bytes by f(copy of them).
func (tp *tamper) edit(name string, f func([]byte) []byte) {
	data := bytes.Clone(tp.w.getRaw(name))
	tp.put(name, f(data))
}

// repair puts every tampered object back as it was.
func (tp *tamper) repair() {
	for name, data := range tp.orig {
		if data == nil {
			if err := os.Remove(tp.w.abs(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				tp.w.t.Fatal(err)
			}
			continue
		}
		tp.w.putRaw(name, data)
	}
	tp.orig = map[string][]byte{}
}

func flipBit(pos func(n int) int) func([]byte) []byte {
	return func(b []byte) []byte {
		if len(b) == 0 {
			return []byte{1}
		}
		b[pos(len(b))] ^= 0x01
		return b
	}
}

func truncate(keep func(n int) int) func([]byte) []byte {
	return func(b []byte) []byte { return b[:keep(len(b))] }
}

// errPanic marks a round that panicked: a hostile relay must never crash a client.
var errPanic = errors.New("round panicked")

// try runs one round, turning a panic into an error the test reports.
func (c *client) try() (res *Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			buf := make([]byte, 8<<10)
			buf = buf[:runtime.Stack(buf, false)]
			res, err = &Result{}, fmt.Errorf("%w: %v\n%s", errPanic, r, buf)
		}
	}()
	return c.e.Round(context.Background())
}

// refused runs a round of c that must not go through: it either fails, or
// (when failOnly is false) reports what holds it back in Waiting or Problems.
// Every string of want must appear in the message. It returns the message.
func (c *client) refused(failOnly bool, want ...string) string {
	c.t.Helper()
	res, err := c.try()
	var msg string
	switch {
	case errors.Is(err, errPanic):
		c.t.Fatalf("%s: %v", c.name, err)
	case err != nil:
		msg = err.Error()
	case failOnly:
		c.t.Fatalf("round of %s went through (%+v); it must fail with an error naming %q", c.name, res, want)
	default:
		msg = strings.Join(append(append([]string{}, res.Waiting...), res.Problems...), "; ")
		if msg == "" {
			c.t.Fatalf("round of %s went through without an error, a Waiting or a Problems entry (%+v); want one naming %q", c.name, res, want)
		}
	}
	for _, s := range want {
		if !strings.Contains(msg, s) {
			c.t.Fatalf("round of %s was refused, but the message does not say %q:\n%s", c.name, s, msg)
		}
	}
	c.t.Logf("%s refused: %s", c.name, msg)
	return msg
}

// ok runs a round that must succeed and returns its result.
func (c *client) ok() *Result {
	c.t.Helper()
	res, err := c.try()
	if err != nil {
		c.t.Fatalf("round of %s: %v", c.name, err)
	}
	return res
}

// reopen closes c's engine and opens it again with the same options, as a
// restart does; escale.json and the key slots are read only then.
func (w *world) reopen(c *client) error {
	w.t.Helper()
	opts := c.e.opts
	_ = c.e.Close()
	relay, err := storage.Open(context.Background(), w.relay)
	if err != nil {
		w.t.Fatal(err)
	}
	e, err := New(context.Background(), relay, opts)
	if err != nil {
		return err
	}
	c.e = e
	w.t.Cleanup(func() { e.Close() })
	return nil
}

// frozen captures what must not change while a hostile relay is refused: the
// client's folder (content, mode, mtime), its trash, and the folder "outside"
// next to it, which hostile names aim at.
type frozen struct {
	t       *testing.T
	c       *client
	outside string
	folder  map[string]string
	out     map[string]string
	trash   int
	top     []string
}

func (w *world) outside() string {
	p := filepath.Join(w.root, "outside")
	if err := os.MkdirAll(p, 0o755); err != nil {
		w.t.Fatal(err)
	}
	return p
}

func (w *world) freeze(c *client) *frozen {
	w.t.Helper()
	f := &frozen{t: w.t, c: c, outside: w.outside()}
	f.folder, f.out, f.trash, f.top = tree(w.t, c.dir), tree(w.t, f.outside), f.trashLen(), w.topLevel()
	return f
}

func (f *frozen) trashLen() int {
	entries, err := f.c.e.folder.Trash().List()
	if err != nil {
		f.t.Fatal(err)
	}
	return len(entries)
}

// topLevel lists the world's root, where an escaping "../x" would land.
func (w *world) topLevel() []string {
	entries, err := os.ReadDir(w.root)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func (f *frozen) check(w *world) {
	f.t.Helper()
	if d := diffTrees(f.folder, tree(f.t, f.c.dir)); d != "" {
		f.t.Fatalf("a refused round changed %s's folder: %s", f.c.name, d)
	}
	if d := diffTrees(f.out, tree(f.t, f.outside)); d != "" {
		f.t.Fatalf("something was written outside the folder: %s", d)
	}
	if n := f.trashLen(); n != f.trash {
		f.t.Fatalf("a refused round moved %d files of %s to the trash", n-f.trash, f.c.name)
	}
	if got := w.topLevel(); strings.Join(got, ",") != strings.Join(f.top, ",") {
		f.t.Fatalf("something was written next to the folders: %v, was %v", got, f.top)
	}
}

func diffTrees(before, after map[string]string) string {
	var d []string
	for k, v := range before {
		if a, ok := after[k]; !ok {
			d = append(d, "removed "+k)
		} else if a != v {
			d = append(d, "changed "+k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	sort.Strings(d)
	return strings.Join(d, ", ")
}

// converge runs rounds of every client until a whole pass moves nothing,
// then checks that their trees are identical.
func converge(t *testing.T, cs ...*client) {
	t.Helper()
	for range 6 {
		busy := false
		for _, c := range cs {
			r := c.ok()
			if len(r.Waiting)+len(r.Problems) > 0 {
				busy = true // something still held back: go on
			}
			busy = busy || r.Busy()
		}
		if !busy {
			break
		}
	}
	for _, c := range cs[1:] {
		sameTrees(t, cs[0], c)
	}
}

// manifest reads c's manifest seq as a puller would.
func (c *client) manifest(seq uint64) *protocol.Manifest {
	c.t.Helper()
	var m protocol.Manifest
	if err := c.e.repo.GetJSON(context.Background(), envelope.KindManifest, protocol.ManifestName(c.e.CID(), seq), protocol.MaxManifest, &m); err != nil {
		c.t.Fatal(err)
	}
	return &m
}

// acked is what c's acknowledgements on the relay say it applied from pusher.
func (c *client) acked(pusher *client) uint64 {
	c.t.Helper()
	var a protocol.Acks
	err := c.e.repo.GetJSON(context.Background(), envelope.KindAcks, protocol.AcksName(c.e.CID()), protocol.MaxSmallObj, &a)
	if errors.Is(err, storage.ErrNotFound) {
		return 0
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return a.Applied[pusher.e.CID()]
}

// putData seals plain as data object id of c with kind.
func (c *client) putData(kind envelope.Kind, id string, plain []byte) {
	c.t.Helper()
	_, err := c.e.repo.PutStream(context.Background(), kind, protocol.DataName(c.e.CID(), id), func(w io.Writer) error {
		_, err := w.Write(plain)
		return err
	})
	if err != nil {
		c.t.Fatal(err)
	}
}

func fixedTime() time.Time { return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC) }
