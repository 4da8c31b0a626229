// Package relaycheck is `escale relay test`: a user's own check that a relay
// does everything escale needs, measured on the real thing, the way
// `git annex testremote` checks a special remote. It works in a temporary
// folder on the relay and removes it afterwards, even when interrupted.
package relaycheck

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/zeebo/blake3"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/storage"
)

// Options tune a check. Zero values take the defaults.
type Options struct {
	// BigSize is the size of the streamed object (default 64 MiB).
	BigSize int64
	// SmallCount is how many small objects measure requests per second (default 64).
	SmallCount int
	// SmallSize is the size of each small object (default 4 KiB).
	SmallSize int
	// Parallel is how many small-object requests run at once (default 4).
	Parallel int
	// ListWait bounds how long to wait for a new object to show in a listing (default 60 s).
	ListWait time.Duration
	// Progress, when set, is told which check runs.
	Progress func(check string)
}

func (o *Options) defaults() {
	if o.BigSize <= 0 {
		o.BigSize = 64 << 20
	}
	if o.SmallCount <= 0 {
		o.SmallCount = 64
	}
	if o.SmallSize <= 0 {
		o.SmallSize = 4 << 10
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.ListWait <= 0 {
		o.ListWait = 60 * time.Second
	}
}

// Status of one check.
type Status string

// The statuses a check can end with.
const (
	Pass Status = "ok"
	Warn Status = "warn" // works, with a limitation escale copes with
	Fail Status = "FAIL"
	Info Status = "info" // a measurement or a capability, nothing to judge
)

// Check is one line of the report.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
}

// Report is the outcome of Run.
type Report struct {
	Relay    string  `json:"relay"`
	Backend  string  `json:"backend"`
	Checks   []Check `json:"checks"`
	Failed   bool    `json:"failed"`
	Problem  string  `json:"problem,omitempty"` // one sentence when the relay cannot be used at all
	Cleaned  bool    `json:"cleaned_up"`
	Duration float64 `json:"duration_seconds"`

	// Measurements, also in Checks as text.
	UploadMBps       float64 `json:"upload_mb_per_s,omitempty"`
	DownloadMBps     float64 `json:"download_mb_per_s,omitempty"`
	SmallPutsPerSec  float64 `json:"small_puts_per_s,omitempty"`
	SmallGetsPerSec  float64 `json:"small_gets_per_s,omitempty"`
	ListDelaySeconds float64 `json:"list_delay_seconds"`
}

func (r *Report) add(name string, st Status, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, Status: st, Detail: fmt.Sprintf(format, args...)})
	if st == Fail {
		r.Failed = true
	}
}

// Run checks the relay spec. It returns a report whenever it reached the
// relay; the error is non-nil when the relay cannot be used at all (and the
// report's Problem holds the sentence to show).
func Run(ctx context.Context, spec string, opts Options) (*Report, error) {
	opts.defaults()
	start := time.Now()
	rep := &Report{Relay: storage.Redact(spec)}
	progress := func(s string) {
		if opts.Progress != nil {
			opts.Progress(s)
		}
	}

	progress("connect")
	relay, err := storage.Open(ctx, spec)
	if err != nil {
		rep.Problem = Explain(rep.Relay, "open", err)
		rep.Failed = true
		return rep, errors.New(rep.Problem)
	}
	defer relay.Close()
	rep.Relay = relay.String()
	feat := relay.Features()
	rep.Backend = feat.Type
	if _, err := relay.List(ctx, ""); err != nil {
		rep.Problem = Explain(rep.Relay, "list", err)
		rep.Failed = true
		return rep, errors.New(rep.Problem)
	}

	dir := "escale-relay-test-" + randomHex(6)
	t := &tester{ctx: ctx, relay: relay, dir: dir, rep: rep, opts: opts, feat: feat}
	defer func() {
		// Clean up even when ctx was cancelled (Ctrl-C): a fresh, bounded context.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		rep.Cleaned = t.cleanup(cctx)
		if !rep.Cleaned {
			rep.add("cleanup", Warn, "could not remove %s from the relay; delete it by hand", dir)
		}
		rep.Duration = time.Since(start).Seconds()
	}()

	steps := []struct {
		name string
		fn   func() error
	}{
		{"write", t.write},
		{"read", t.read},
		{"ranged read", t.rangedRead},
		{"stat", t.stat},
		{"listing", t.listing},
		{"mtime", t.mtime},
		{"hashes", t.hashes},
		{"overwrite", t.overwrite},
		{"conditional create", t.conditional},
		{"move", t.move},
		{"delete", t.delete},
		{"big object", t.big},
		{"small objects", t.small},
		{"space", t.about},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			rep.add(s.name, Fail, "interrupted")
			return rep, fmt.Errorf("relay test interrupted: %w", err)
		}
		progress(s.name)
		if err := s.fn(); err != nil {
			// A write refused right after a successful listing is a read-only relay.
			if s.name == "write" {
				rep.Problem = Explain(rep.Relay, "write", err)
				rep.add(s.name, Fail, "%s", rep.Problem)
				return rep, errors.New(rep.Problem)
			}
			rep.add(s.name, Fail, "%v", err)
		}
	}
	return rep, nil
}

type tester struct {
	ctx       context.Context
	relay     *storage.Relay
	dir       string
	rep       *Report
	opts      Options
	feat      storage.Features
	smallData []byte // content of dir/small
}

func (t *tester) name(n string) string { return t.dir + "/" + n }

func (t *tester) write() error {
	t.smallData = []byte("escale relay test " + randomHex(16) + "\n")
	if _, err := t.relay.Put(t.ctx, t.name("small"), bytes.NewReader(t.smallData), int64(len(t.smallData))); err != nil {
		return err
	}
	t.rep.add("write", Pass, "wrote a %d-byte object", len(t.smallData))
	return nil
}

func (t *tester) read() error {
	got, err := readAll(t.ctx, t.relay, t.name("small"), 0, -1)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, t.smallData) {
		return fmt.Errorf("read back %d bytes that differ from the %d written", len(got), len(t.smallData))
	}
	t.rep.add("read", Pass, "read back identical bytes")
	return nil
}

func (t *tester) rangedRead() error {
	got, err := readAll(t.ctx, t.relay, t.name("small"), 7, 5)
	if err != nil {
		return err
	}
	if want := t.smallData[7:12]; !bytes.Equal(got, want) {
		return fmt.Errorf("range [7,12) gave %q, want %q", got, want)
	}
	t.rep.add("ranged read", Pass, "byte ranges are honoured")
	return nil
}

func (t *tester) stat() error {
	e, err := t.relay.Stat(t.ctx, t.name("small"))
	if err != nil {
		return err
	}
	if e.Size != int64(len(t.smallData)) {
		return fmt.Errorf("size %d reported for a %d-byte object", e.Size, len(t.smallData))
	}
	t.rep.add("stat", Pass, "size reported correctly")
	return nil
}

// listing measures how long a new object takes to show in a listing; escale
// waits that long before trusting a listing for locks.
func (t *tester) listing() error {
	name := t.name("listed")
	if _, err := t.relay.Put(t.ctx, name, strings.NewReader("x"), 1); err != nil {
		return err
	}
	start := time.Now()
	for {
		entries, err := t.relay.List(t.ctx, t.dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Name == name {
				d := time.Since(start)
				t.rep.ListDelaySeconds = d.Seconds()
				st := Pass
				if d > 2*time.Second {
					st = Warn
				}
				t.rep.add("listing", st, "a new object appeared in the listing after %s", round(d))
				return nil
			}
		}
		if time.Since(start) > t.opts.ListWait {
			t.rep.ListDelaySeconds = -1
			t.rep.add("listing", Warn, "a new object did not appear in the listing within %s (eventually consistent storage: escale reads objects by name and copes, but locks wait longer)", t.opts.ListWait)
			return nil
		}
		select {
		case <-t.ctx.Done():
			return t.ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (t *tester) mtime() error {
	p := t.feat.ModTimePrecision
	switch {
	case p == 0:
		t.rep.add("mtime", Info, "the backend keeps no modification times (escale does not need them: times travel inside manifests)")
	case p >= time.Second:
		t.rep.add("mtime", Info, "modification times kept to %s", p)
	default:
		t.rep.add("mtime", Info, "modification times kept to %s", p)
	}
	return nil
}

func (t *tester) hashes() error {
	if len(t.feat.Hashes) == 0 {
		t.rep.add("hashes", Info, "the backend computes no hashes (escale verifies its own BLAKE3 hashes)")
		return nil
	}
	e, err := t.relay.Stat(t.ctx, t.name("small"))
	if err != nil {
		return err
	}
	have := make([]string, 0, len(e.Hashes))
	for k := range e.Hashes {
		have = append(have, k)
	}
	sort.Strings(have)
	t.rep.add("hashes", Info, "backend hashes: %s (given on stat: %s)", strings.Join(t.feat.Hashes, ", "), orNone(have))
	return nil
}

func (t *tester) overwrite() error {
	repl := []byte("replaced " + randomHex(8))
	if _, err := t.relay.Put(t.ctx, t.name("small"), bytes.NewReader(repl), int64(len(repl))); err != nil {
		return err
	}
	got, err := readAll(t.ctx, t.relay, t.name("small"), 0, -1)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, repl) {
		return fmt.Errorf("after an overwrite the object still reads %d old bytes", len(got))
	}
	t.smallData = repl
	t.rep.add("overwrite", Pass, "an overwrite replaces the object")
	return nil
}

func (t *tester) conditional() error {
	name := t.name("once")
	if _, err := t.relay.PutIfAbsent(t.ctx, name, strings.NewReader("1"), 1); err != nil {
		return fmt.Errorf("first create: %w", err)
	}
	_, err := t.relay.PutIfAbsent(t.ctx, name, strings.NewReader("2"), 1)
	if !errors.Is(err, storage.ErrExists) {
		if err == nil {
			return errors.New("a second create of the same name succeeded")
		}
		return fmt.Errorf("second create: %w", err)
	}
	if t.feat.ConditionalCreate {
		t.rep.add("conditional create", Pass, "atomic on the server")
	} else {
		t.rep.add("conditional create", Info, "not atomic on this backend (check, then put); escale's layout does not depend on it")
	}
	return nil
}

func (t *tester) move() error {
	from, to := t.name("once"), t.name("moved")
	err := t.relay.Move(t.ctx, from, to)
	if errors.Is(err, storage.ErrUnsupported) {
		t.rep.add("move", Info, "the backend cannot move objects (escale does not need it)")
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := t.relay.Stat(t.ctx, to); err != nil {
		return fmt.Errorf("moved object not found: %w", err)
	}
	how := "by copy and delete"
	if t.feat.ServerSideMove {
		how = "server-side"
	}
	t.rep.add("move", Pass, "objects move %s", how)
	return nil
}

func (t *tester) delete() error {
	if err := t.relay.Delete(t.ctx, t.name("small")); err != nil {
		return err
	}
	_, err := t.relay.Stat(t.ctx, t.name("small"))
	if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("a deleted object still answers stat (%v)", err)
	}
	t.rep.add("delete", Pass, "deleted objects are gone")
	return nil
}

// big streams an object of unknown size generated on the fly, then reads it
// back and compares hashes: nothing is held whole in memory on either side.
func (t *tester) big() error {
	size := t.opts.BigSize
	seed := mrand.Uint64()
	name := t.name("big")
	h := blake3.New()
	src := io.TeeReader(io.LimitReader(newPRNG(seed), size), h)
	start := time.Now()
	// Size -1: the streaming path, as escale uploads packs whose size it does not know up front.
	if _, err := t.relay.Put(t.ctx, name, struct{ io.Reader }{src}, -1); err != nil {
		return fmt.Errorf("streamed upload: %w", err)
	}
	up := time.Since(start)
	want := h.Sum(nil)

	start = time.Now()
	rc, err := t.relay.Open(t.ctx, name, 0, -1)
	if err != nil {
		return err
	}
	h2 := blake3.New()
	n, err := io.Copy(h2, rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	down := time.Since(start)
	if n != size || !bytes.Equal(h2.Sum(nil), want) {
		return fmt.Errorf("the %s object read back differs (%d bytes)", config.HumanSize(size), n)
	}
	t.rep.UploadMBps = mbps(size, up)
	t.rep.DownloadMBps = mbps(size, down)
	t.rep.add("big object", Pass, "%s streamed and verified; upload %.1f MB/s, download %.1f MB/s", config.HumanSize(size), t.rep.UploadMBps, t.rep.DownloadMBps)
	return t.relay.Delete(t.ctx, name)
}

func (t *tester) small() error {
	n := t.opts.SmallCount
	payload := make([]byte, t.opts.SmallSize)
	_, _ = rand.Read(payload)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s/many/%04d", t.dir, i)
	}
	start := time.Now()
	if err := parallel(t.ctx, names, t.opts.Parallel, func(name string) error {
		_, err := t.relay.Put(t.ctx, name, bytes.NewReader(payload), int64(len(payload)))
		return err
	}); err != nil {
		return fmt.Errorf("small puts: %w", err)
	}
	puts := time.Since(start)
	start = time.Now()
	if err := parallel(t.ctx, names, t.opts.Parallel, func(name string) error {
		got, err := readAll(t.ctx, t.relay, name, 0, -1)
		if err == nil && !bytes.Equal(got, payload) {
			err = fmt.Errorf("%s read back differs", name)
		}
		return err
	}); err != nil {
		return fmt.Errorf("small gets: %w", err)
	}
	gets := time.Since(start)
	t.rep.SmallPutsPerSec = float64(n) / puts.Seconds()
	t.rep.SmallGetsPerSec = float64(n) / gets.Seconds()
	t.rep.add("small objects", Info, "%d × %s with %d in parallel: %.0f puts/s, %.0f gets/s", n, config.HumanSize(int64(t.opts.SmallSize)), t.opts.Parallel, t.rep.SmallPutsPerSec, t.rep.SmallGetsPerSec)
	return nil
}

func (t *tester) about() error {
	u, err := t.relay.About(t.ctx)
	if errors.Is(err, storage.ErrUnsupported) {
		t.rep.add("space", Info, "the backend does not report space; escale counts its own usage against quota")
		return nil
	}
	if err != nil {
		return err
	}
	t.rep.add("space", Info, "used %s, free %s, total %s", humanOr(u.Used), humanOr(u.Free), humanOr(u.Total))
	return nil
}

func (t *tester) cleanup(ctx context.Context) bool {
	if err := t.relay.Purge(ctx, t.dir); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return false
	}
	// Listings may lag behind the deletes (bucket stores, caching servers):
	// look again for a while before calling the folder left behind.
	for i := 0; ; i++ {
		entries, err := t.relay.List(ctx, t.dir)
		if err == nil && len(entries) == 0 {
			return true
		}
		if i == 20 || ctx.Err() != nil {
			return false
		}
		if err == nil && i == 10 {
			_ = t.relay.Purge(ctx, t.dir) // and delete again what showed up late
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Explain turns a storage failure into the one sentence a user needs: what is
// wrong, why, and what to check.
func Explain(relay, op string, err error) string {
	var what, check string
	switch storage.KindOf(err) {
	case storage.KindUnreachable:
		what, check = "cannot reach the server", "check the host name, the port, that the server runs, and your network or firewall"
	case storage.KindAuth:
		if op == "write" {
			what, check = "the relay refused a write", "the account or folder is read-only, and escale needs to write there"
		} else {
			what, check = "the server refused the credentials", "check the user, password or key of this remote"
		}
	case storage.KindNotFound:
		what, check = "the remote folder does not exist and could not be created", "check the path"
	case storage.KindQuota:
		what, check = "the relay is out of space or over its quota", "free some space or raise the quota"
	case storage.KindTransient:
		what, check = "the server kept failing with temporary errors", "try again later, or check the server's health"
	default:
		return fmt.Sprintf("relay %s: %v", relay, err)
	}
	return fmt.Sprintf("relay %s: %s (%s); %s", relay, what, rootCause(err), check)
}

// rootCause is the innermost error's message: the OS's or the server's own words.
func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

func readAll(ctx context.Context, r *storage.Relay, name string, off, n int64) ([]byte, error) {
	rc, err := r.Open(ctx, name, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func parallel(ctx context.Context, items []string, n int, fn func(string) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan string)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				if err := fn(it); err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}
		}()
	}
loop:
	for _, it := range items {
		select {
		case work <- it:
		case <-ctx.Done():
			break loop
		}
	}
	close(work)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

// prng is a fast deterministic byte source for test objects.
type prng struct{ r *mrand.ChaCha8 }

func newPRNG(seed uint64) *prng {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return &prng{mrand.NewChaCha8(s)}
}

func (p *prng) Read(b []byte) (int, error) { return p.r.Read(b) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func mbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		d = time.Nanosecond
	}
	return float64(n) / 1e6 / d.Seconds()
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

func humanOr(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return config.HumanSize(n)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
