package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/escale-sync/escale/pkg/daemon"
)

func syncCommand() *cli.Command {
	return &cli.Command{
		Name:  "sync",
		Usage: "sync every repository of the configuration, until stopped (or one round with --once)",
		Description: "Exit codes of --once: 0 all repositories in sync; 1 an error stopped at least one\n" +
			"repository; 2 a round completed but something waits (quota, a lock, a conflict, a held-back\n" +
			"mass deletion).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "once", Usage: "run one full round (pull and push) per repository and exit"},
			&cli.StringSliceFlag{Name: "repo", Usage: "only this repository (repeatable)"},
			&cli.BoolFlag{Name: "allow-mass-delete", Usage: "let this run delete more than max_delete percent of the files"},
			&cli.BoolFlag{Name: "dry-run", Usage: "say what one round would do, and change nothing (implies --once)"},
		},
		Action: runSync,
	}
}

func runSync(c *cli.Context) error {
	ev, err := setup(c, false)
	if err != nil {
		return err
	}
	defer ev.close()
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := daemon.Options{Repos: c.StringSlice("repo"), AllowMassDelete: c.Bool("allow-mass-delete"), DryRun: c.Bool("dry-run"), Logger: ev.log, TTY: stdinTTY(c), Prompt: c.App.ErrWriter}
	if !c.Bool("once") && !o.DryRun {
		ev.log.Info("escale sync started", "config", ev.cfg.File)
		// systemd (Type=notify): ready once running, status per round, watchdog.
		n := daemon.NewNotifier(os.Getenv)
		_ = n.Send("READY=1\nSTATUS=syncing")
		go n.Watchdog(ctx)
		defer n.Send("STOPPING=1")
		report := func(out daemon.Outcome) {
			switch {
			case out.Err != nil:
				_ = n.Send("STATUS=" + out.Repo + ": " + out.Err.Error())
			case out.Result != nil && out.Result.Busy():
				r := out.Result
				ev.log.Info("round done", "repo", out.Repo, "pulled", r.Pulled, "deleted", r.Deleted, "pushed", r.Pushed, "conflicts", r.Conflicts, "up", r.BytesUp, "down", r.BytesDown)
				_ = n.Send(fmt.Sprintf("STATUS=%s: pulled %d, pushed %d", out.Repo, r.Pulled, r.Pushed))
			}
		}
		// The metrics endpoint lives as long as the process, across reloads,
		// so counters are not reset by a SIGHUP.
		m, _, err := daemon.ServeMetrics(ctx, ev.cfg, ev.log)
		if err != nil {
			return withCode(ExitError, err)
		}
		o.Metrics = m
		served := ev.cfg.MetricsAddress
		// SIGHUP reloads the configuration: the repositories stop cleanly
		// and start again with the new settings. A configuration that does
		// not load keeps the old one running.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		cfg := ev.cfg
		for {
			runCtx, stopRun := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- daemon.Run(runCtx, cfg, o, report) }()
			select {
			case err := <-done:
				stopRun()
				return err
			case <-hup:
				_ = n.Send("RELOADING=1")
				stopRun()
				<-done
				next, err := loadConfig(c)
				if err != nil {
					ev.log.Error("configuration reload failed; keeping the previous one", "err", err)
				} else {
					if next.MetricsAddress != served {
						ev.log.Warn("metrics_address changed; restart escale to serve metrics at the new address", "serving", served)
					}
					cfg = next
					ev.log.Info("configuration reloaded", "config", cfg.File)
				}
				_ = n.Send("READY=1")
			}
		}
	}
	// On a terminal, a bar counts the bytes moved (silent in cron mail).
	if bar := NewBar(c.App.ErrWriter, "syncing", -1, true); bar != nil && !o.DryRun {
		o.Progress = bar.Add
		defer bar.Finish()
	}
	outs, err := daemon.Once(ctx, ev.cfg, o)
	if err != nil {
		return withCode(ExitError, err)
	}
	return onceSummary(c, outs)
}

// onceSummary prints one line per repository and picks the exit code.
func onceSummary(c *cli.Context, outs []daemon.Outcome) error {
	code := ExitOK
	var failed []string
	for _, o := range outs {
		switch {
		case o.Err != nil:
			fmt.Fprintf(c.App.ErrWriter, "%s: error: %v\n", o.Repo, o.Err)
			failed = append(failed, o.Repo)
			code = ExitError
		case len(o.Result.Plan) > 0 || c.Bool("dry-run"):
			for _, p := range o.Result.Plan {
				fmt.Fprintf(c.App.Writer, "%s: would %s\n", o.Repo, p)
			}
			if len(o.Result.Plan) == 0 {
				fmt.Fprintf(c.App.Writer, "%s: nothing to do\n", o.Repo)
			}
			for _, w := range o.Result.Waiting {
				fmt.Fprintf(c.App.Writer, "%s: waiting: %s\n", o.Repo, w)
			}
		default:
			r := o.Result
			fmt.Fprintf(c.App.Writer, "%s: pulled %d, deleted %d, pushed %d, conflicts %d, %d bytes up, %d down\n", o.Repo, r.Pulled, r.Deleted, r.Pushed, r.Conflicts, r.BytesUp, r.BytesDown)
			for _, p := range r.Problems {
				fmt.Fprintf(c.App.ErrWriter, "%s: problem: %s\n", o.Repo, p)
			}
			for _, w := range r.Waiting {
				fmt.Fprintf(c.App.Writer, "%s: waiting: %s\n", o.Repo, w)
			}
			if len(r.Waiting) > 0 && code == ExitOK {
				code = ExitWaiting
			}
		}
	}
	switch code {
	case ExitError:
		return withCode(code, fmt.Errorf("%s failed", strings.Join(failed, ", ")))
	case ExitWaiting:
		return withCode(code, fmt.Errorf("a round completed but something waits (see above)"))
	}
	return nil
}

// ctxOf is the command's context, never nil.
func ctxOf(c *cli.Context) context.Context {
	if c.Context != nil {
		return c.Context
	}
	return context.Background()
}
