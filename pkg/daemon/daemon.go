// Package daemon runs the repositories of a configuration: one round each
// (`escale sync --once`), or rounds forever with adaptive polling
// (`escale sync`), each repository isolated from the others' failures.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/escale-sync/escale/pkg/alert"
	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/engine"
	"github.com/escale-sync/escale/pkg/filter"
	"github.com/escale-sync/escale/pkg/localfs"
	"github.com/escale-sync/escale/pkg/metrics"
	"github.com/escale-sync/escale/pkg/state"
	"github.com/escale-sync/escale/pkg/storage"
	"github.com/escale-sync/escale/pkg/watch"
)

// Options of a run.
type Options struct {
	Repos           []string // names to run; empty: all
	AllowMassDelete bool
	DryRun          bool // rounds say what they would do and change nothing
	Logger          *slog.Logger
	Getenv          func(string) string
	TTY             *os.File  // for a passphrase prompt; nil: never prompt
	Prompt          io.Writer // where the prompt is written
	// Metrics receives every round's figures; nil: none (see ServeMetrics).
	Metrics *metrics.Metrics
	// Progress is told of the bytes every repository moves (a progress
	// bar); it must be safe for concurrent use.
	Progress func(n int64)
	// Repair rebuilds a wiped or replaced relay (escale repair).
	Repair *engine.Repair

	// alerts runs on_error and mails maintainers; set by Run and Once.
	alerts *alert.Notifier
}

// Outcome of one repository's round.
type Outcome struct {
	Repo   string
	Result *engine.Result
	Err    error
}

// Status of an outcome, mapped to exit codes by the CLI.
func (o Outcome) Waiting() bool { return o.Err == nil && o.Result != nil && len(o.Result.Waiting) > 0 }

// Selected returns the repositories to run.
func Selected(cfg *config.Config, names []string) ([]*config.Repository, error) {
	if len(names) == 0 {
		out := make([]*config.Repository, len(cfg.Repositories))
		for i := range cfg.Repositories {
			out[i] = &cfg.Repositories[i]
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%s defines no repository: add a [repository.NAME] table (`escale init` writes one)", cfg.File)
		}
		return out, nil
	}
	var out []*config.Repository
	for _, n := range names {
		r := cfg.Repository(n)
		if r == nil {
			return nil, fmt.Errorf("no repository %q in %s", n, cfg.File)
		}
		out = append(out, r)
	}
	return out, nil
}

// open builds the engine of one repository.
func open(ctx context.Context, cfg *config.Config, r *config.Repository, o Options) (*engine.Engine, error) {
	creds, err := Credentials(r, o.Getenv, o.TTY, o.Prompt)
	if err != nil {
		return nil, err
	}
	flt, err := filter.New(filter.Rules{Include: r.Include, Exclude: r.Exclude, IncludeDirs: r.IncludeDirs, ExcludeDirs: r.ExcludeDirs, Extensions: r.Extensions})
	if err != nil {
		return nil, fmt.Errorf("repository.%s filters: %w", r.Name, err)
	}
	relay, err := storage.Open(ctx, r.Relay)
	if err != nil {
		return nil, err
	}
	e, err := engine.New(ctx, relay, engine.Options{
		Name: r.Name, Path: r.Path, Client: r.Client, Mode: engine.Mode(r.Mode),
		StateDir: filepath.Join(cfg.StateDir, r.Name),
		Pullers:  r.Pullers, PullerTimeout: r.PullerTimeout, Quota: r.Quota,
		MaxPackSize: r.MaxPackSize, MaxDelete: r.MaxDelete, AllowMassDelete: o.AllowMassDelete, DryRun: o.DryRun, Settle: cfg.Settle, Repair: o.Repair, Progress: o.Progress,
		IndexBy: r.Index.Kind, IndexN: r.Index.N,
		Filter: flt, Encrypted: r.Encryption != config.EncryptionNone, Credentials: creds,
		Logger: o.Logger,
	})
	if err == nil && !o.DryRun {
		cleanTemps(cfg, r, o.Logger)
	}
	return e, err
}

// Once runs one round of each selected repository, concurrently.
func Once(ctx context.Context, cfg *config.Config, o Options) ([]Outcome, error) {
	repos, err := Selected(cfg, o.Repos)
	if err != nil {
		return nil, err
	}
	out := make([]Outcome, len(repos))
	if !o.DryRun {
		o.alerts = newAlerts(cfg, o.Logger)
		// A cron run must not exit before its alert is delivered.
		defer o.alerts.Wait()
	}
	var wg sync.WaitGroup
	for i, r := range repos {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = Outcome{Repo: r.Name}
			e, err := open(ctx, cfg, r, o)
			if errors.Is(err, state.ErrInUse) {
				// Another escale (an overlapping cron run, the daemon) has it:
				// nothing failed, this run just waits its turn.
				out[i].Result = &engine.Result{Waiting: []string{err.Error()}}
				return
			}
			if err != nil {
				out[i].Err = err
				o.observe(r, out[i], 0, nil, 0)
				return
			}
			defer e.Close()
			start := time.Now()
			out[i].Result, out[i].Err = e.Round(ctx)
			if !o.DryRun {
				st := writeStatus(cfg, e, out[i], 0, readPrev(cfg, r.Name))
				o.observe(r, out[i], time.Since(start), st, 0)
			}
		}()
	}
	wg.Wait()
	return out, nil
}

// Run syncs the selected repositories until ctx ends. A repository that
// fails is retried with backoff and never stops the others. report is told
// the outcome of every round.
func Run(ctx context.Context, cfg *config.Config, o Options, report func(Outcome)) error {
	repos, err := Selected(cfg, o.Repos)
	if err != nil {
		return err
	}
	if !o.DryRun {
		o.alerts = newAlerts(cfg, o.Logger)
		defer o.alerts.Wait()
	}
	var wg sync.WaitGroup
	for _, r := range repos {
		if o.Metrics != nil {
			o.Metrics.Add(r.Name, r.Quota)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			runRepo(ctx, cfg, r, o, report)
		}()
	}
	wg.Wait()
	return nil
}

func runRepo(ctx context.Context, cfg *config.Config, r *config.Repository, o Options, report func(Outcome)) {
	log := o.Logger.With("repo", r.Name)
	var e *engine.Engine
	defer func() {
		if e != nil {
			e.Close()
		}
	}()
	// Local edits trigger a round at once; polling still runs for the relay
	// side and as the periodic full rescan.
	var changes <-chan watch.Batch
	if w, err := watch.New(r.Path, watch.Options{Ignore: localfs.IsTemp, Logger: log}); err != nil {
		log.Warn("cannot watch the folder for changes; relying on periodic scans", "err", err)
	} else {
		defer w.Close()
		changes = w.Changes()
	}
	poll := newPoller(r.MinPoll, r.MaxPoll)
	// Failures back off to a minute at most: after an outage a repository
	// is syncing again within a minute of the relay coming back.
	backoff := newPoller(r.MinPoll, max(r.MaxPoll, time.Minute))
	prev := readPrev(cfg, r.Name)
	for ctx.Err() == nil {
		var wait time.Duration
		start := time.Now()
		if e == nil {
			var err error
			e, err = open(ctx, cfg, r, o)
			if err != nil {
				report(Outcome{Repo: r.Name, Err: err})
				wait = backoff.next(false)
				prev = writeStatus(cfg, nil, Outcome{Repo: r.Name, Err: err}, 0, prev)
				if ctx.Err() == nil {
					o.observe(r, Outcome{Repo: r.Name, Err: err}, time.Since(start), prev, wait)
				}
				log.Error("cannot start the repository; retrying", "err", err, "in", wait)
				sleep(ctx, wait, nil)
				continue
			}
		}
		res, err := e.Round(ctx)
		report(Outcome{Repo: r.Name, Result: res, Err: err})
		if err != nil && !errors.Is(err, context.Canceled) {
			wait = backoff.next(false)
			log.Error("round failed; retrying", "err", err, "in", wait)
			// Reopen next time: the relay or the keys may have changed.
			e.Close()
			e = nil
		} else {
			backoff.reset()
			wait = poll.next(res != nil && res.Busy())
		}
		prev = writeStatus(cfg, e, Outcome{Repo: r.Name, Result: res, Err: err}, wait, prev)
		if ctx.Err() == nil {
			o.observe(r, Outcome{Repo: r.Name, Result: res, Err: err}, time.Since(start), prev, wait)
		}
		if sleep(ctx, wait, changes) {
			poll.next(true) // local activity: poll the relay fast again
		}
	}
}

// readPrev is the last status snapshot, for its last success time.
func readPrev(cfg *config.Config, repo string) *RepoStatus {
	if st, err := ReadStatus(cfg, []string{repo}); err == nil && len(st) == 1 {
		return st[0]
	}
	return nil
}

// poller doubles its interval while idle, from lo up to hi, and drops back
// to lo on activity.
type poller struct {
	lo, hi, current time.Duration
}

func newPoller(lo, hi time.Duration) *poller {
	if lo <= 0 {
		lo = config.DefaultMinPoll
	}
	if hi < lo {
		hi = lo
	}
	return &poller{lo: lo, hi: hi}
}

func (p *poller) next(busy bool) time.Duration {
	switch {
	case busy || p.current == 0:
		p.current = p.lo
	default:
		p.current = min(p.current*2, p.hi)
	}
	return p.current
}

func (p *poller) reset() { p.current = 0 }

// sleep waits d, or until a batch of local changes arrives (reported true).
func sleep(ctx context.Context, d time.Duration, changes <-chan watch.Batch) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case _, ok := <-changes:
		return ok
	}
	return false
}
