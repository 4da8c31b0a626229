package metrics

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape fetches url and parses the Prometheus text format.
func Scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns the sample of family name for repo (a histogram gives its count).
func value(t *testing.T, fams map[string]*dto.MetricFamily, name, repo string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == "repository" && l.GetValue() == repo {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				case m.Histogram != nil:
					return float64(m.Histogram.GetSampleCount())
				}
			}
		}
	}
	t.Fatalf("no %s{repository=%q}", name, repo)
	return 0
}

func TestServeAndObserve(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := New()
	addr, err := m.Serve(ctx, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr.String() + "/metrics"
	m.Add("work", 2e9)
	m.Add("idle", 0)

	fams := Scrape(t, url)
	if v := value(t, fams, "escale_rounds_total", "idle"); v != 0 {
		t.Errorf("a declared repository starts at %v rounds", v)
	}
	if v := value(t, fams, "escale_relay_quota_bytes", "work"); v != 2e9 {
		t.Errorf("quota %v", v)
	}

	done := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m.Observe("work", Round{Duration: 1500 * time.Millisecond, BytesUp: 1000, BytesDown: 20, Pushed: 3, Pulled: 1, Conflicts: 1,
		Collected: 2, HaveState: true, Pending: 1, PendingBytes: 900, LastSuccess: done, PollInterval: 5 * time.Second})
	m.Observe("work", Round{Duration: 10 * time.Millisecond, Failed: true, LastSuccess: done, PollInterval: 20 * time.Second, Waiting: 1})
	m.Observe("work", Round{Duration: 10 * time.Millisecond, BytesUp: 500, Pushed: 1, LastSuccess: done.Add(time.Minute), PollInterval: 5 * time.Second})

	fams = Scrape(t, url)
	for name, want := range map[string]float64{
		"escale_rounds_total":                   3,
		"escale_round_errors_total":             1,
		"escale_round_duration_seconds":         3,
		"escale_bytes_pushed_total":             1500,
		"escale_bytes_pulled_total":             20,
		"escale_files_pushed_total":             4,
		"escale_files_pulled_total":             1,
		"escale_conflicts_total":                1,
		"escale_objects_collected_total":        2,
		"escale_pending_uploads":                1, // the last round had no state: kept
		"escale_pending_upload_bytes":           900,
		"escale_last_success_timestamp_seconds": float64(done.Add(time.Minute).Unix()),
		"escale_poll_interval_seconds":          5,
		"escale_repository_ok":                  1,
		"escale_waiting":                        0,
	} {
		if got := value(t, fams, name, "work"); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if value(t, fams, "escale_rounds_total", "idle") != 0 {
		t.Error("one repository's rounds counted on another")
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	// Nothing landed on the process-wide default registry.
	def, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range def {
		if strings.HasPrefix(f.GetName(), "escale_") {
			t.Errorf("%s is on the default registry", f.GetName())
		}
	}

	// A busy address is an error at start, naming the key.
	if _, err := New().Serve(ctx, addr.String(), nil); err == nil || !strings.Contains(err.Error(), "metrics_address") {
		t.Errorf("a second server on %s: %v", addr, err)
	}
	cancel()
}
