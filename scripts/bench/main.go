// Command bench measures escale against the floor of what any tool must do
// to move files through a relay, `rclone copy A relay:` then
// `rclone copy relay: B` with the rclone version escale embeds, on the same
// data and the same relays, run pair by pair. `make bench` runs it at full
// size; docs/BENCHMARKS.md holds the results and what limits them.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

type options struct {
	sizes   string
	only    []string
	relays  []string // nil: each workload's own list
	runs    int
	keys    []string
	out     string
	work    string
	keep    bool
	profile string
	escale  string // a prebuilt escale binary instead of building this tree
	smallN  int    // overrides the small-files workload's file count
	scanN   int    // overrides the scan workload's file count
	trace   string // file for every WebDAV request's method and path
	log     io.Writer
}

// sizes of the generated data.
type sizes struct {
	smallN                int
	smallSize             int64
	mediumN               int
	mediumSize            int64
	bigN                  int
	bigSize               int64
	delta, deltaExtent    int64
	deltaExtents          int
	idleFiles, idlePolls  int
	scanFiles             int
	smallRelays, bigRelay []string
}

var allSizes = map[string]sizes{
	// The sizes.
	"full": {
		smallN: 10_000, smallSize: 4 << 10, mediumN: 1000, mediumSize: 1 << 20, bigN: 4, bigSize: 256 << 20,
		delta: 1 << 30, deltaExtents: 16, deltaExtent: 64 << 10,
		idleFiles: 100_000, idlePolls: 12, scanFiles: 1_000_000,
		smallRelays: []string{"local", "sftp", "webdav", "sftp+50ms", "webdav+50ms"},
		bigRelay:    []string{"local", "sftp", "webdav"},
	},
	// A few seconds: keeps the harness alive in CI and tests.
	"smoke": {
		smallN: 150, smallSize: 4 << 10, mediumN: 10, mediumSize: 256 << 10, bigN: 2, bigSize: 4 << 20,
		delta: 16 << 20, deltaExtents: 4, deltaExtent: 16 << 10,
		idleFiles: 500, idlePolls: 2, scanFiles: 2000,
		smallRelays: []string{"local", "sftp", "webdav"},
		bigRelay:    []string{"local", "webdav"},
	},
}

var workloadNames = []string{"small", "medium", "big", "delta", "idle", "scan"}

func main() {
	var o options
	var only, relays, keys string
	flag.StringVar(&o.sizes, "sizes", "full", "data sizes: full (the issue's) or smoke (seconds)")
	flag.StringVar(&only, "only", "", "comma-separated workloads to run: "+strings.Join(workloadNames, ","))
	flag.StringVar(&relays, "relays", "", "comma-separated relays instead of each workload's: local, sftp, webdav, sftp+50ms, webdav+50ms")
	flag.IntVar(&o.runs, "runs", 3, "runs per tool and relay (median and min–max are reported)")
	flag.StringVar(&keys, "keys", "passphrase,x25519", "escale key kinds, each a line: passphrase (scrypt) and/or x25519 (age identity file)")
	flag.StringVar(&o.out, "out", "", "also append the markdown results to this file")
	flag.StringVar(&o.work, "work", "", "scratch folder (default: a new temp folder, removed at the end)")
	flag.BoolVar(&o.keep, "keep", false, "keep the scratch folder")
	flag.StringVar(&o.escale, "escale", "", "use this escale binary instead of building ./cmd/escale (e.g. to compare two builds)")
	flag.IntVar(&o.smallN, "small-files", 0, "file count of the small-files workload instead of the size's (e.g. fewer for the 50 ms relays)")
	flag.IntVar(&o.scanN, "scan-files", 0, "file count of the scan workload instead of the size's")
	flag.StringVar(&o.trace, "trace", "", "write every WebDAV request (method and path) into this file, under a heading per process")
	flag.StringVar(&o.profile, "profile", "", "write escale CPU and memory profiles of every process into this folder")
	flag.Parse()
	o.only, o.relays, o.keys = split(only), split(relays), split(keys)
	o.log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := bench(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// bench runs the selected workloads and writes a markdown report to w
// (and o.out), table by table as each finishes.
func bench(ctx context.Context, o options, w io.Writer) (tables []*table, err error) {
	sz, ok := allSizes[o.sizes]
	if !ok {
		return nil, fmt.Errorf("unknown -sizes %q: use full or smoke", o.sizes)
	}
	if o.smallN > 0 {
		sz.smallN = o.smallN
	}
	if o.scanN > 0 {
		sz.scanFiles = o.scanN
	}
	if o.runs < 1 {
		return nil, fmt.Errorf("-runs must be at least 1")
	}
	if len(o.keys) == 0 {
		o.keys = []string{"passphrase"}
	}
	for _, k := range o.keys {
		if k != "passphrase" && k != "x25519" {
			return nil, fmt.Errorf("unknown key kind %q: use passphrase or x25519", k)
		}
	}
	selected := map[string]bool{}
	for _, n := range o.only {
		if !contains(workloadNames, n) {
			return nil, fmt.Errorf("unknown workload %q: use %s", n, strings.Join(workloadNames, ", "))
		}
		selected[n] = true
	}
	want := func(n string) bool { return len(o.only) == 0 || selected[n] }
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	if o.work == "" {
		if o.work, err = os.MkdirTemp("", "escale-bench-"); err != nil {
			return nil, err
		}
		if !o.keep {
			defer os.RemoveAll(o.work)
		}
	} else if err := os.MkdirAll(o.work, 0o755); err != nil {
		return nil, err
	}
	if o.profile != "" {
		if o.profile, err = filepath.Abs(o.profile); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return nil, err
		}
	}
	logf := func(f string, a ...any) { fmt.Fprintf(o.log, "bench: "+f+"\n", a...) }
	t, err := buildTools(ctx, root, o.work, o.escale, logf)
	if err != nil {
		return nil, err
	}
	srv := &servers{work: o.work, rclone: t.rclone, pass: randomSecret(), relays: map[string]*relay{}}
	defer srv.close()
	if o.trace != "" {
		f, err := os.Create(o.trace)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		srv.trace = f
	}
	h := &harness{o: o, sz: sz, t: t, srv: srv, work: o.work, logf: logf}
	if err := h.setupKeys(); err != nil {
		return nil, err
	}
	var out io.Writer = w
	if o.out != "" {
		f, err := os.OpenFile(o.out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		out = io.MultiWriter(w, f)
	}
	fmt.Fprintf(out, "## Run of `go run ./scripts/bench %s`\n\n%s\n", strings.Join(os.Args[1:], " "), machine(t, o.sizes))
	relaysOr := func(def []string) []string {
		if o.relays != nil {
			return o.relays
		}
		return def
	}
	type step struct {
		name string
		run  func(emit func(*table)) error
	}
	steps := []step{
		{"small", func(emit func(*table)) error {
			return h.copyWorkload(ctx, "small", fmt.Sprintf("%d files of %d KiB", sz.smallN, sz.smallSize>>10), relaysOr(sz.smallRelays),
				func(d string) (int64, error) { return genRandom(d, sz.smallN, sz.smallSize, 1) }, emit)
		}},
		{"medium", func(emit func(*table)) error {
			return h.copyWorkload(ctx, "medium", fmt.Sprintf("%d files of %d KiB", sz.mediumN, sz.mediumSize>>10), relaysOr(sz.bigRelay),
				func(d string) (int64, error) { return genRandom(d, sz.mediumN, sz.mediumSize, 2) }, emit)
		}},
		{"big", func(emit func(*table)) error {
			return h.copyWorkload(ctx, "big", fmt.Sprintf("%d files of %d MiB", sz.bigN, sz.bigSize>>20), relaysOr(sz.bigRelay),
				func(d string) (int64, error) { return genRandom(d, sz.bigN, sz.bigSize, 3) }, emit)
		}},
		{"delta", func(emit func(*table)) error {
			return h.deltaWorkload(ctx, relaysOr([]string{"local", "webdav"}), emit)
		}},
		{"idle", func(emit func(*table)) error { return h.idleWorkload(ctx, relaysOr([]string{"webdav"}), emit) }},
		{"scan", func(emit func(*table)) error { return h.scanWorkload(ctx, emit) }},
	}
	for _, s := range steps {
		if !want(s.name) {
			continue
		}
		// Each relay's table is written as soon as it is measured: a long
		// run stopped halfway keeps what it finished.
		emit := func(tab *table) {
			tab.Workload = s.name
			// The targets are for the sizes only.
			comparable := o.sizes == "full" && (s.name != "small" || o.smallN == 0) && (s.name != "scan" || o.scanN == 0)
			tab.Notes = append(tab.Notes, targets(s.name, tab, comparable)...)
			tab.markdown(out)
			tables = append(tables, tab)
		}
		if err := s.run(emit); err != nil {
			return tables, fmt.Errorf("workload %s: %w", s.name, err)
		}
	}
	return tables, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// targets states the goals next to the medians, for the full sizes.
func targets(workload string, t *table, comparable bool) []string {
	var notes []string
	say := func(what string, got, limit float64, unit string) {
		verdict := "met"
		if got > limit {
			verdict = "**missed**"
		}
		if !comparable {
			verdict = "(not the issue's size: not comparable)"
		}
		notes = append(notes, fmt.Sprintf("target %s ≤ %g%s: median %.3g%s, %s", what, limit, unit, got, unit, verdict))
	}
	for _, r := range t.Rows {
		if len(r.Samples) == 0 || !strings.HasPrefix(r.Tool, "escale") && workload != "idle" && workload != "scan" {
			continue
		}
		ratio := spreadOf(r.Ratios).med
		rss := r.each(func(s sample) float64 { return float64(s.RSS) / 1e6 }).med
		label := r.Relay + ", " + r.Tool
		switch workload {
		case "small":
			limit := 0.6
			switch {
			case strings.Contains(r.Relay, "+"):
				limit = 0.05
			case r.Relay != "local":
				limit = 0.25
			}
			say("ratio to floor ("+label+")", ratio, limit, "×")
		case "big":
			say("ratio to floor ("+label+")", ratio, 1.15, "×")
			say("peak RSS ("+label+")", rss, 150, " MB")
		case "delta":
			say("bytes sent ÷ file ("+label+")", r.each(func(s sample) float64 { return float64(s.Sent) / float64(s.Plain) }).med, 0.02, "")
		case "idle":
			if strings.HasPrefix(r.Tool, "idle") && r.Samples[0].Tally.Requests != nil {
				say("requests per poll ("+label+")", r.each(func(s sample) float64 { return float64(s.Tally.total()) }).med, 2, "")
			}
		case "scan":
			if strings.HasPrefix(r.Tool, "warm") {
				say("warm wall time", r.each(func(s sample) float64 { return s.Wall.Seconds() }).med, 15, " s")
				say("warm peak RSS", rss, 400, " MB")
			}
		}
	}
	return notes
}
