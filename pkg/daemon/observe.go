package daemon

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/escale-sync/escale/pkg/alert"
	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/metrics"
)

// newAlerts builds the notifier of a run from the configuration. Episode
// state lives beside the status snapshot, so cron runs and restarts share it.
func newAlerts(cfg *config.Config, log *slog.Logger) *alert.Notifier {
	return alert.New(alert.Options{
		Mail:      alert.MailOptions{Server: cfg.SMTPServer, From: cfg.SMTPFrom, User: cfg.SMTPUser, PasswordFile: cfg.SMTPPasswordFile},
		Interval:  cfg.AlertInterval,
		StateFile: func(repo string) string { return filepath.Join(cfg.StateDir, repo, "alert.json") },
		Logger:    log,
	})
}

// ServeMetrics starts the Prometheus endpoint of cfg.MetricsAddress until
// ctx ends, and returns the collectors for Options.Metrics and the bound
// address. With no metrics_address it returns nil, nil, nil.
func ServeMetrics(ctx context.Context, cfg *config.Config, log *slog.Logger) (*metrics.Metrics, net.Addr, error) {
	if cfg.MetricsAddress == "" {
		return nil, nil, nil
	}
	m := metrics.New()
	addr, err := m.Serve(ctx, cfg.MetricsAddress, log)
	if err != nil {
		return nil, nil, err
	}
	if log != nil {
		log.Info("serving Prometheus metrics", "url", "http://"+addr.String()+"/metrics")
	}
	return m, addr, nil
}

// observe hands one round's outcome to the alerts and the metrics. took
// is the round's duration; st the snapshot just written (nil for Once's
// failures to open); wait the time until the next round.
func (o Options) observe(r *config.Repository, out Outcome, took time.Duration, st *RepoStatus, wait time.Duration) {
	if o.DryRun {
		return
	}
	if o.alerts != nil {
		o.alerts.Observe(alert.Target{Repo: r.Name, Client: r.Client, OnError: r.OnError, Maintainer: r.Maintainer}, out.Err)
	}
	if o.Metrics == nil {
		return
	}
	round := metrics.Round{Duration: took, Failed: out.Err != nil, PollInterval: wait, RelayUsage: -1}
	// A failed round may still have moved data before it stopped: count it.
	if res := out.Result; res != nil {
		round.BytesUp, round.BytesDown = res.BytesUp, res.BytesDown
		round.ObjectsUp, round.ObjectsDown, round.RelayUsage = res.ObjectsUp, res.ObjectsDown, res.RelayUsage
		round.Pushed, round.Pulled, round.Deleted, round.Conflicts, round.Collected = res.Pushed, res.Pulled, res.Deleted, res.Conflicts, res.Collected
		round.Waiting = len(res.Waiting)
	}
	if st != nil {
		round.LastSuccess = st.LastSuccess
		if st.State != nil {
			round.HaveState, round.Pending, round.PendingBytes = true, st.State.Pending, st.State.PendingBytes
		}
	}
	o.Metrics.Observe(r.Name, round)
}
