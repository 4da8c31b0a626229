package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"
)

// harness holds what every workload shares.
type harness struct {
	o     options
	sz    sizes
	t     *tools
	srv   *servers
	work  string
	pass  string // passphrase file
	ident string // age X25519 identity file
	logf  func(string, ...any)
}

func (h *harness) setupKeys() error {
	h.pass = filepath.Join(h.work, "passphrase")
	if err := os.WriteFile(h.pass, []byte("bench passphrase "+randomSecret()+"\n"), 0o600); err != nil {
		return err
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	h.ident = filepath.Join(h.work, "identity.age")
	return os.WriteFile(h.ident, []byte(id.String()+"\n"), 0o600)
}

// escaleConf writes one client's configuration: encryption on, every
// other setting at its default.
func (h *harness) escaleConf(dir, client, folder, spec, key string) (string, error) {
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return "", err
	}
	keyLine := fmt.Sprintf("passphrase_file = %q", h.pass)
	if key == "x25519" {
		keyLine = fmt.Sprintf("key_file = %q", h.ident)
	}
	conf := filepath.Join(dir, client+".toml")
	// settle = 0s: the data was written before the run; escale's default
	// would hold back files changed less than a second ago.
	body := fmt.Sprintf("state_dir = %q\nlog_level = \"warn\"\nsettle = \"0s\"\n[repository.bench]\npath = %q\nrelay = %q\nclient = %q\n%s\n",
		filepath.Join(dir, client+"-state"), folder, spec, client, keyLine)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return conf, os.WriteFile(conf, []byte(body), 0o644)
}

// escaleOnce runs one `escale sync --once`, with profiles when asked.
func (h *harness) escaleOnce(ctx context.Context, conf, tag string) (proc, error) {
	var env []string
	if h.o.profile != "" {
		env = []string{
			"ESCALE_CPUPROFILE=" + filepath.Join(h.o.profile, tag+".cpu.pprof"),
			"ESCALE_MEMPROFILE=" + filepath.Join(h.o.profile, tag+".mem.pprof"),
		}
	}
	return run(ctx, env, h.t.escale, "--config", conf, "sync", "--once")
}

func (h *harness) rcloneCopy(ctx context.Context, src, dst string) (proc, error) {
	return run(ctx, nil, h.t.rclone, "copy", src, dst, "--config", "/dev/null", "-q")
}

// pair is a measured push then pull through one relay folder.
type pair struct {
	h      *harness
	r      *relay
	sub    string // relay folder, below r.Root
	a, b   string // sending and receiving folders
	key    string // "" for the floor
	confA  string
	confB  string
	tag    string
	stored int64 // relay bytes before this pair
}

func (h *harness) newPair(r *relay, dir, key, a, b string) (*pair, error) {
	p := &pair{h: h, r: r, sub: filepath.Base(dir), a: a, b: b, key: key, tag: r.Name + "-" + filepath.Base(dir)}
	if err := os.MkdirAll(b, 0o755); err != nil {
		return nil, err
	}
	if key == "" {
		return p, nil
	}
	var err error
	if p.confA, err = h.escaleConf(dir, "a", a, r.spec(p.sub), key); err != nil {
		return nil, err
	}
	p.confB, err = h.escaleConf(dir, "b", b, r.spec(p.sub), key)
	return p, err
}

// measure runs the push and the pull, checks the copy, and returns the
// figures of the two processes together.
func (p *pair) measure(ctx context.Context, plain int64, n int) (sample, error) {
	p.r.count.take()
	p.h.srv.mark(p.r, fmt.Sprintf("%s, run %d: push", p.tool(), n))
	var push, pull proc
	var err error
	var sent int64
	if p.key == "" {
		if push, err = p.h.rcloneCopy(ctx, p.a, p.r.spec(p.sub)); err != nil {
			return sample{}, err
		}
	} else {
		if push, err = p.h.escaleOnce(ctx, p.confA, fmt.Sprintf("%s-%d-push", p.tag, n)); err != nil {
			return sample{}, err
		}
		sent, _ = escaleBytes(push.Out)
	}
	stored, _, err := treeSize(filepath.Join(p.r.Root, p.sub))
	if err != nil {
		return sample{}, err
	}
	p.h.srv.mark(p.r, fmt.Sprintf("%s, run %d: pull", p.tool(), n))
	if p.key == "" {
		pull, err = p.h.rcloneCopy(ctx, p.r.spec(p.sub), p.b)
	} else {
		pull, err = p.h.escaleOnce(ctx, p.confB, fmt.Sprintf("%s-%d-pull", p.tag, n))
	}
	if err != nil {
		return sample{}, err
	}
	if err := sameTree(ctx, p.a, p.b); err != nil {
		return sample{}, fmt.Errorf("%s on %s: the copy is wrong, the figure is void: %w", p.tool(), p.r.Name, err)
	}
	s := sample{
		Wall: push.Wall + pull.Wall, CPU: push.CPU + pull.CPU, RSS: max(push.RSS, pull.RSS),
		Tally: p.r.count.take(), Stored: stored - p.stored, Sent: sent, Plain: plain, Polls: 2,
	}
	p.stored = stored
	return s, nil
}

func (p *pair) tool() string {
	if p.key == "" {
		return "floor: rclone copy A→relay, relay→B"
	}
	return "escale (" + p.key + " key)"
}

func (p *pair) cleanup() {
	_ = os.RemoveAll(filepath.Join(p.r.Root, p.sub))
	_ = os.RemoveAll(p.b)
	if p.confA != "" {
		_ = os.RemoveAll(filepath.Dir(p.confA))
	}
}

// tools are the floor and then escale with each key kind.
func (h *harness) toolKeys() []string { return append([]string{""}, h.o.keys...) }

// copyWorkload sends a generated tree from A to B, fresh each run, with
// the floor and escale paired run by run.
func (h *harness) copyWorkload(ctx context.Context, name, title string, relays []string, gen func(string) (int64, error), emit func(*table)) error {
	base := filepath.Join(h.work, name)
	defer os.RemoveAll(base)
	a := filepath.Join(base, "A")
	h.logf("%s: generating data", name)
	plain, err := gen(a)
	if err != nil {
		return fmt.Errorf("generate %s: %w", name, err)
	}
	_, files, _ := treeSize(a)
	data := fmt.Sprintf("%d files, %.1f MB of plaintext; every run starts from an empty relay folder and an empty B.", files, float64(plain)/1e6)
	for _, rn := range relays {
		r, err := h.srv.get(ctx, rn)
		if err != nil {
			return err
		}
		rows := make([]*row, 0, 3)
		for _, k := range h.toolKeys() {
			rows = append(rows, &row{Relay: rn, Tool: (&pair{key: k}).tool()})
		}
		for n := 0; n < h.o.runs; n++ {
			walls := make([]time.Duration, len(rows))
			for j := range rows {
				// Alternate who goes first, so a warm cache or a busy
				// neighbour does not always favour the same tool.
				i := j
				if n%2 == 1 {
					i = len(rows) - 1 - j
				}
				k := h.toolKeys()[i]
				dir := filepath.Join(base, fmt.Sprintf("%s-run%d-%s", name, n, orFloor(k)))
				p, err := h.newPair(r, dir, k, a, filepath.Join(dir, "B"))
				if err != nil {
					return err
				}
				h.logf("%s: %s on %s, run %d", name, p.tool(), rn, n+1)
				s, err := p.measure(ctx, plain, n)
				p.cleanup()
				if err != nil {
					return err
				}
				if k == "" {
					s.Sent = s.Stored
				}
				rows[i].Samples = append(rows[i].Samples, s)
				walls[i] = s.Wall
			}
			for i := 1; i < len(rows); i++ {
				rows[i].Ratios = append(rows[i].Ratios, walls[i].Seconds()/walls[0].Seconds())
			}
		}
		emit(&table{Title: title + ", " + rn + " relay", Data: data, Rows: rows})
	}
	return nil
}

func orFloor(k string) string {
	if k == "" {
		return "floor"
	}
	return k
}

// deltaWorkload edits a big file in place between runs: escale sends the
// changed chunks, rclone copy the whole file again.
func (h *harness) deltaWorkload(ctx context.Context, relays []string, emit func(*table)) error {
	name := "delta"
	base := filepath.Join(h.work, name)
	defer os.RemoveAll(base)
	a := filepath.Join(base, "A")
	h.logf("delta: generating a %d MiB file", h.sz.delta>>20)
	size, err := genRandom(a, 1, h.sz.delta, 7)
	if err != nil {
		return err
	}
	file := filePath(a, 0)
	change := int64(h.sz.deltaExtents) * h.sz.deltaExtent
	edits := uint64(100)
	t := table{
		Title: fmt.Sprintf("Delta: %d KiB changed in a %d MiB file", change>>10, size>>20),
		Data: fmt.Sprintf("One random %d MiB file, sent once (not measured); before each run %d extents of %d KiB are overwritten at random places. "+
			"Sent ÷ plain is over the whole file: escale's own count of bytes sent; the floor re-sends the file.", size>>20, h.sz.deltaExtents, h.sz.deltaExtent>>10),
	}
	for _, rn := range relays {
		r, err := h.srv.get(ctx, rn)
		if err != nil {
			return err
		}
		var pairs []*pair
		var rows []*row
		for _, k := range h.toolKeys() {
			dir := filepath.Join(base, "delta-"+orFloor(k))
			p, err := h.newPair(r, dir, k, a, filepath.Join(dir, "B"))
			if err != nil {
				return err
			}
			h.logf("delta: first copy for %s on %s", p.tool(), rn)
			if _, err := p.measure(ctx, size, -1); err != nil {
				return err
			}
			pairs = append(pairs, p)
			rows = append(rows, &row{Relay: rn, Tool: p.tool()})
		}
		for n := 0; n < h.o.runs; n++ {
			// A new seed for every edit: the same seed again would write the
			// same bytes at the same places, a change of nothing but time.
			edits++
			if err := scribble(file, h.sz.deltaExtents, h.sz.deltaExtent, edits); err != nil {
				return err
			}
			// rclone copy skips a file whose size and time look unchanged,
			// so the time moves; into the past, because escale holds back a
			// file modified within the last second (it may be mid-write).
			past := time.Now().Add(-time.Minute)
			if err := os.Chtimes(file, past, past); err != nil {
				return err
			}
			walls := make([]time.Duration, len(rows))
			for j := range rows {
				i := j
				if n%2 == 1 {
					i = len(rows) - 1 - j
				}
				h.logf("delta: %s on %s, run %d", pairs[i].tool(), rn, n+1)
				s, err := pairs[i].measure(ctx, size, n)
				if err != nil {
					return err
				}
				if pairs[i].key == "" {
					s.Sent = size
				}
				// The relay folder's growth means nothing here: escale
				// collects the superseded chunks as it goes.
				s.Stored = 0
				rows[i].Samples = append(rows[i].Samples, s)
				walls[i] = s.Wall
			}
			for i := 1; i < len(rows); i++ {
				rows[i].Ratios = append(rows[i].Ratios, walls[i].Seconds()/walls[0].Seconds())
			}
		}
		for _, p := range pairs {
			p.cleanup()
		}
		tr := t
		tr.Title += ", " + rn + " relay"
		tr.Rows = rows
		emit(&tr)
	}
	return nil
}

// idleWorkload counts what a poll with nothing to do costs on a big
// repository: both clients run `sync --once` rounds with no change.
func (h *harness) idleWorkload(ctx context.Context, relays []string, emit func(*table)) error {
	base := filepath.Join(h.work, "idle")
	defer os.RemoveAll(base)
	a := filepath.Join(base, "A")
	h.logf("idle: generating %d files", h.sz.idleFiles)
	plain, err := genTiny(a, h.sz.idleFiles)
	if err != nil {
		return err
	}
	t := &table{
		Title: fmt.Sprintf("Idle: polls of a %d-file repository with no change", h.sz.idleFiles),
		Data: fmt.Sprintf("Both clients synced once (not measured), then %d rounds of `escale sync --once` each with nothing to do. "+
			"Each figure is one round of one client; requests per round times 12 is an idle hour at the default max_poll (5 min).", h.sz.idlePolls),
	}
	key := h.o.keys[0]
	for _, rn := range relays {
		r, err := h.srv.get(ctx, rn)
		if err != nil {
			return err
		}
		dir := filepath.Join(base, "idle-"+key)
		p, err := h.newPair(r, dir, key, a, filepath.Join(dir, "B"))
		if err != nil {
			return err
		}
		h.logf("idle: first sync of %d files on %s", h.sz.idleFiles, rn)
		first, err := p.measure(ctx, plain, -1)
		if err != nil {
			return err
		}
		t.Rows = append(t.Rows, &row{Relay: rn, Tool: "first sync, push + pull (setup)", Samples: []sample{first}})
		rowA := &row{Relay: rn, Tool: "idle round, sending client (" + key + " key)"}
		rowB := &row{Relay: rn, Tool: "idle round, receiving client (" + key + " key)"}
		for n := 0; n < h.sz.idlePolls; n++ {
			for _, c := range []struct {
				conf, name string
				row        *row
			}{{p.confA, "a", rowA}, {p.confB, "b", rowB}} {
				r.count.take()
				h.srv.mark(r, fmt.Sprintf("%s, idle round %d", c.row.Tool, n))
				pr, err := h.escaleOnce(ctx, c.conf, fmt.Sprintf("%s-idle-%s-%d", rn, c.name, n))
				if err != nil {
					return err
				}
				c.row.Samples = append(c.row.Samples, sample{Wall: pr.Wall, CPU: pr.CPU, RSS: pr.RSS, Tally: r.count.take(), Polls: 1})
			}
		}
		if err := sameTree(ctx, a, p.b); err != nil {
			return err
		}
		p.cleanup()
		t.Rows = append(t.Rows, rowA, rowB)
	}
	emit(t)
	return nil
}

// scanWorkload measures the local side alone on a very large tree: the
// first `sync --once` (empty state: scan, hash, pack, push to a local
// relay) and then rounds with no change.
func (h *harness) scanWorkload(ctx context.Context, emit func(*table)) error {
	base := filepath.Join(h.work, "scan")
	defer os.RemoveAll(base)
	a := filepath.Join(base, "A")
	h.logf("scan: generating %d files", h.sz.scanFiles)
	start := time.Now()
	plain, err := genTiny(a, h.sz.scanFiles)
	if err != nil {
		return err
	}
	key := h.o.keys[0]
	t := &table{
		Title: fmt.Sprintf("Local tree of %d files: cold and warm scan", h.sz.scanFiles),
		Data: fmt.Sprintf("%d small text files (%.1f MB) in folders of %d, written in %.0f s; one client, local-folder relay, %s key. "+
			"Cold is the first `sync --once` (empty state: scan, hash, pack, push); warm is a `sync --once` with no change.",
			h.sz.scanFiles, float64(plain)/1e6, perDir, time.Since(start).Seconds(), key),
	}
	r, err := h.srv.get(ctx, "local")
	if err != nil {
		return err
	}
	dir := filepath.Join(base, "scan-"+key)
	conf, err := h.escaleConf(dir, "a", a, r.spec("scan"), key)
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Join(r.Root, "scan"))
	h.logf("scan: cold")
	cold, err := h.escaleOnce(ctx, conf, "scan-cold")
	if err != nil {
		return err
	}
	stored, _, _ := treeSize(filepath.Join(r.Root, "scan"))
	sent, _ := escaleBytes(cold.Out)
	t.Rows = append(t.Rows, &row{Relay: "local", Tool: "cold: first sync --once", Samples: []sample{{Wall: cold.Wall, CPU: cold.CPU, RSS: cold.RSS, Stored: stored, Sent: sent, Plain: plain}}})
	warm := &row{Relay: "local", Tool: "warm: sync --once, no change"}
	for n := 0; n < h.o.runs; n++ {
		h.logf("scan: warm %d", n+1)
		p, err := h.escaleOnce(ctx, conf, fmt.Sprintf("scan-warm-%d", n))
		if err != nil {
			return err
		}
		warm.Samples = append(warm.Samples, sample{Wall: p.Wall, CPU: p.CPU, RSS: p.RSS})
	}
	t.Rows = append(t.Rows, warm)
	emit(t)
	return nil
}
