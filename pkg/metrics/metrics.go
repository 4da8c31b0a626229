// Package metrics exposes escale's figures to Prometheus: what each
// repository moved, its conflicts, its rounds and their errors, when it last
// succeeded, how often it polls, and what waits on the relay. Everything is
// labelled with the repository's name and lives on the Metrics' own
// registry, never on the process-wide default one.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds escale's collectors. It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	bytesPushed, bytesPulled                *prometheus.CounterVec
	objectsPushed, objectsPulled            *prometheus.CounterVec
	relayUsage                              *prometheus.GaugeVec
	filesPushed, filesPulled, filesDeleted  *prometheus.CounterVec
	conflicts, collected, rounds, roundErrs *prometheus.CounterVec
	roundDuration                           *prometheus.HistogramVec
	lastSuccess, pollInterval, quota, ok    *prometheus.GaugeVec
	pendingUploads, pendingBytes, waiting   *prometheus.GaugeVec
}

// Round is what the daemon learnt from one round (or failed attempt to
// open) of a repository.
type Round struct {
	Duration time.Duration
	Failed   bool
	// From the engine's Result (zero when the round failed early).
	BytesUp, BytesDown                 int64
	ObjectsUp, ObjectsDown             int   // relay data objects moved
	RelayUsage                         int64 // bytes on the relay when measured; -1: not measured
	Pushed, Pulled, Deleted, Conflicts int
	Collected                          int // relay objects removed once every puller had them
	Waiting                            int // reasons the repository waits (quota, lock, conflict, mass delete)
	// From the local state, when it could be read.
	HaveState    bool
	Pending      int   // own updates whose data waits on the relay for pullers
	PendingBytes int64 // their size on the relay
	// LastSuccess is the end of the last successful round (zero: never).
	LastSuccess time.Time
	// PollInterval is the wait before the next round.
	PollInterval time.Duration
}

const label = "repository"

// New builds the collectors on a fresh registry, with the Go runtime and
// process collectors beside them.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	counter := func(name, help string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "escale", Name: name, Help: help}, []string{label})
		reg.MustRegister(c)
		return c
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "escale", Name: name, Help: help}, []string{label})
		reg.MustRegister(g)
		return g
	}
	m := &Metrics{reg: reg,
		bytesPushed:   counter("bytes_pushed_total", "Bytes uploaded to the relay (after compression and encryption)."),
		bytesPulled:   counter("bytes_pulled_total", "Bytes downloaded from the relay."),
		filesPushed:   counter("files_pushed_total", "Changes published to the relay."),
		filesPulled:   counter("files_pulled_total", "Files written or moved here from other clients' updates."),
		filesDeleted:  counter("files_deleted_total", "Files moved to the trash because another client deleted them."),
		conflicts:     counter("conflicts_total", "Conflict copies made here."),
		objectsPushed: counter("objects_pushed_total", "Relay data objects (packs, chunks) uploaded."),
		objectsPulled: counter("objects_pulled_total", "Relay data objects downloaded."),
		relayUsage:    gauge("relay_usage_bytes", "Bytes on the relay when last measured (a push with a quota measures it)."),
		collected:     counter("objects_collected_total", "Relay objects deleted because every puller had them."),
		rounds:        counter("rounds_total", "Rounds run, failed ones included."),
		roundErrs:     counter("round_errors_total", "Rounds that failed (including failures to open the repository)."),
		roundDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "escale", Name: "round_duration_seconds",
			Help:    "How long a round took.",
			Buckets: prometheus.ExponentialBucketsRange(0.01, 3600, 14)}, []string{label}),
		lastSuccess:    gauge("last_success_timestamp_seconds", "Unix time of the end of the last successful round; 0 if none yet."),
		pollInterval:   gauge("poll_interval_seconds", "Wait before the next round (the retry backoff after a failure)."),
		quota:          gauge("relay_quota_bytes", "The repository's relay quota; 0 = none."),
		ok:             gauge("repository_ok", "1 if the last round succeeded, 0 if it failed."),
		pendingUploads: gauge("pending_uploads", "This client's updates whose data still waits on the relay for pullers."),
		pendingBytes:   gauge("pending_upload_bytes", "Relay bytes held by those updates."),
		waiting:        gauge("waiting", "Reasons the repository waits after its last round (quota, lock, conflict, mass delete)."),
	}
	reg.MustRegister(m.roundDuration, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Add declares a repository, so its series exist (at zero) before its
// first round; quota is its relay quota in bytes (0 = none).
func (m *Metrics) Add(repo string, quota int64) {
	for _, c := range []*prometheus.CounterVec{m.bytesPushed, m.bytesPulled, m.objectsPushed, m.objectsPulled, m.filesPushed, m.filesPulled, m.filesDeleted,
		m.conflicts, m.collected, m.rounds, m.roundErrs} {
		c.WithLabelValues(repo)
	}
	m.quota.WithLabelValues(repo).Set(float64(quota))
	m.lastSuccess.WithLabelValues(repo) // 0 until the first success
}

// Observe records one round of repo.
func (m *Metrics) Observe(repo string, r Round) {
	m.rounds.WithLabelValues(repo).Inc()
	m.roundDuration.WithLabelValues(repo).Observe(r.Duration.Seconds())
	if r.Failed {
		m.roundErrs.WithLabelValues(repo).Inc()
		m.ok.WithLabelValues(repo).Set(0)
	} else {
		m.ok.WithLabelValues(repo).Set(1)
	}
	m.bytesPushed.WithLabelValues(repo).Add(float64(max(r.BytesUp, 0)))
	m.bytesPulled.WithLabelValues(repo).Add(float64(max(r.BytesDown, 0)))
	m.objectsPushed.WithLabelValues(repo).Add(float64(max(r.ObjectsUp, 0)))
	m.objectsPulled.WithLabelValues(repo).Add(float64(max(r.ObjectsDown, 0)))
	if r.RelayUsage >= 0 {
		m.relayUsage.WithLabelValues(repo).Set(float64(r.RelayUsage))
	}
	m.filesPushed.WithLabelValues(repo).Add(float64(max(r.Pushed, 0)))
	m.filesPulled.WithLabelValues(repo).Add(float64(max(r.Pulled, 0)))
	m.filesDeleted.WithLabelValues(repo).Add(float64(max(r.Deleted, 0)))
	m.conflicts.WithLabelValues(repo).Add(float64(max(r.Conflicts, 0)))
	m.collected.WithLabelValues(repo).Add(float64(max(r.Collected, 0)))
	m.waiting.WithLabelValues(repo).Set(float64(r.Waiting))
	if !r.LastSuccess.IsZero() {
		m.lastSuccess.WithLabelValues(repo).Set(float64(r.LastSuccess.UnixNano()) / 1e9)
	}
	m.pollInterval.WithLabelValues(repo).Set(r.PollInterval.Seconds())
	if r.HaveState {
		m.pendingUploads.WithLabelValues(repo).Set(float64(r.Pending))
		m.pendingBytes.WithLabelValues(repo).Set(float64(r.PendingBytes))
	}
}

// Gatherer gives the registry, for tests and other exporters.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
}

// Serve listens on addr and serves /metrics until ctx ends. It returns the
// bound address (addr may use port 0) once listening, so a bad address is
// an error at start rather than a line in the log later.
func (m *Metrics) Serve(ctx context.Context, addr string, log *slog.Logger) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_address %s: %w (choose a free port, or leave metrics_address empty to turn metrics off)", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "escale: metrics are at /metrics")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && log != nil {
			log.Error("the metrics server stopped", "address", l.Addr().String(), "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	return l.Addr(), nil
}
