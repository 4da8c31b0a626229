package daemon

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/escale-sync/escale/pkg/config"
)

// scrape reads the metric name of repo from a /metrics endpoint; ok is
// false when the series is not there yet.
func scrape(t *testing.T, url, name, repo string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == "repository" && l.GetValue() == repo {
				return sample(m), true
			}
		}
	}
	return 0, false
}

func sample(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// The daemon feeds the metrics endpoint from its rounds, and runs on_error
// once for a repository that keeps failing with the same error.
func TestDaemonMetricsAndOnError(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the hook is an sh command")
	}
	root := t.TempDir()
	for _, d := range []string{"relay", "folder", "other"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pass := filepath.Join(root, "pass")
	if err := os.WriteFile(pass, []byte("daemon test words\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	content := []byte("measured on the way out")
	if err := os.WriteFile(filepath.Join(root, "folder", "a.txt"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	hook := filepath.Join(root, "hook.log")
	body := `state_dir = "` + filepath.Join(root, "state") + `"
metrics_address = "127.0.0.1:0"
passphrase_file = "` + pass + `"
client = "alpha"
min_poll = "100ms"
max_poll = "400ms"
on_error = "echo \"$ESCALE_EVENT $ESCALE_REPOSITORY\" >> ` + hook + `"

[repository.good]
path = "` + filepath.Join(root, "folder") + `"
relay = "` + filepath.Join(root, "relay") + `"
quota = "1GB"

[repository.broken]
path = "` + filepath.Join(root, "other") + `"
relay = "no-such-remote:relay"
`
	cfg, err := config.Parse(filepath.Join(root, "escale.toml"), []byte(body), config.LoadOptions{Home: root})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m, addr, err := ServeMetrics(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr.String() + "/metrics"
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, Options{Logger: log, Metrics: m}, func(Outcome) {}) }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		pushed, _ := scrape(t, url, "escale_files_pushed_total", "good")
		errs, _ := scrape(t, url, "escale_round_errors_total", "broken")
		if pushed >= 1 && errs >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: good pushed %v files, broken failed %v rounds", pushed, errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	check := func(name, repo string, ok func(float64) bool, want string) {
		t.Helper()
		v, found := scrape(t, url, name, repo)
		if !found || !ok(v) {
			t.Errorf("%s{repository=%q} = %v (found %v), want %s", name, repo, v, found, want)
		}
	}
	// Pushed bytes are the encrypted, compressed form: more than nothing,
	// and a file this small cannot grow past a few KB.
	check("escale_bytes_pushed_total", "good", func(v float64) bool { return v > 0 && v < 64<<10 }, "a few KB")
	check("escale_relay_quota_bytes", "good", func(v float64) bool { return v == 1e9 }, "1e9")
	check("escale_objects_pushed_total", "good", func(v float64) bool { return v >= 1 }, "at least the pack")
	check("escale_relay_usage_bytes", "good", func(v float64) bool { return v > 0 && v < 1e9 }, "what the push measured, under the quota")
	check("escale_repository_ok", "good", func(v float64) bool { return v == 1 }, "1")
	check("escale_repository_ok", "broken", func(v float64) bool { return v == 0 }, "0")
	check("escale_round_errors_total", "good", func(v float64) bool { return v == 0 }, "0")
	check("escale_last_success_timestamp_seconds", "good", func(v float64) bool {
		return v > float64(time.Now().Add(-time.Hour).Unix()) && v <= float64(time.Now().Unix()+1)
	}, "within the last hour")
	check("escale_last_success_timestamp_seconds", "broken", func(v float64) bool { return v == 0 }, "0 (never)")
	check("escale_poll_interval_seconds", "good", func(v float64) bool { return v >= 0.1 && v <= 0.4 }, "between min_poll and max_poll")
	check("escale_round_duration_seconds", "good", func(v float64) bool { return v >= 1 }, "at least one observation")
	check("escale_pending_uploads", "good", func(v float64) bool { return v >= 1 }, "the push, with no puller yet")

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(hook)
	if err != nil {
		t.Fatalf("on_error never ran: %v", err)
	}
	if got := strings.TrimSpace(string(data)); got != "failed broken" {
		t.Errorf("on_error calls %q, want exactly one \"failed broken\" for a repeated error", got)
	}
}
