package storage_test

import (
	"context"
	"encoding/json"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rclone/rclone/fs"

	"github.com/escale-sync/escale/pkg/storage"
)

// logRecorder is a slog.Handler that keeps every record, at every level.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}

// find returns the first record whose message contains s.
func (l *logRecorder) find(s string) (slog.Record, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		if strings.Contains(r.Message, s) {
			return r, true
		}
	}
	return slog.Record{}, false
}

func (l *logRecorder) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.records {
		text := r.Message
		r.Attrs(func(a slog.Attr) bool { text += " " + a.Value.String(); return true })
		if strings.Contains(text, s) {
			return true
		}
	}
	return false
}

func attr(r slog.Record, key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

func TestRcloneLogsReachEscaleLogger(t *testing.T) {
	conf, _ := testConfig(t)
	var rec logRecorder
	if err := storage.Init(storage.Options{RcloneConfig: conf, Logger: slog.New(&rec)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { storage.Init(storage.Options{RcloneConfig: conf}) })

	fs.Debugf(nil, "rclone debug line %d", 1)
	fs.Infof("some object", "rclone info line")
	fs.Logf(nil, "rclone notice line")
	fs.Errorf(nil, "rclone error line")
	for msg, want := range map[string]slog.Level{
		"rclone debug line 1": slog.LevelDebug,
		"rclone info line":    slog.LevelInfo,
		"rclone notice line":  slog.LevelInfo,
		"rclone error line":   slog.LevelWarn,
	} {
		r, ok := rec.find(msg)
		if !ok {
			t.Fatalf("%q did not reach the logger", msg)
		}
		if r.Level != want || attr(r, "component") != "rclone" {
			t.Fatalf("%q: level %v component %q; want %v, rclone", msg, r.Level, attr(r, "component"), want)
		}
	}
	if r, _ := rec.find("rclone info line"); attr(r, "object") != "some object" {
		t.Fatalf("the object rclone logged about is lost: %q", attr(r, "object"))
	}

	// A real rclone operation logs through the same path.
	r := openRelay(t, t.TempDir())
	if _, err := r.Put(context.Background(), "x", strings.NewReader("abc"), 10); err == nil {
		t.Fatal("short body accepted")
	}
	if _, ok := rec.find("Post request put error"); !ok {
		t.Fatal("rclone's own log of a failed upload did not reach the logger")
	}
}

func TestRcloneLogLevelFollowsLogger(t *testing.T) {
	conf, _ := testConfig(t)
	var rec logRecorder
	info := slog.New(levelFilter{&rec, slog.LevelInfo})
	if err := storage.Init(storage.Options{RcloneConfig: conf, Logger: info}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { storage.Init(storage.Options{RcloneConfig: conf}) })
	fs.Debugf(nil, "hidden debug")
	fs.Infof(nil, "hidden info")
	fs.Logf(nil, "shown notice")
	if rec.contains("hidden") || !rec.contains("shown notice") {
		t.Fatalf("an info-level logger got %d records: %v", len(rec.records), rec.records)
	}
}

type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(_ context.Context, l slog.Level) bool { return l >= f.min }

// TestInitKeepsProcessLoggers checks, in a fresh process where Init runs
// for the first time, that librclone's takeover of slog.Default and the
// standard log package is undone, and that rclone's lines go to escale's
// logger rather than rclone's own stderr output.
func TestInitKeepsProcessLoggers(t *testing.T) {
	if os.Getenv("ESCALE_STORAGE_CHILD") == "1" {
		initChild()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestInitKeepsProcessLoggers$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RCLONE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "ESCALE_STORAGE_CHILD=1", "ESCALE_STORAGE_CONF="+filepath.Join(t.TempDir(), "none.conf"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	lines := map[string]map[string]any{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			if msg, _ := m["msg"].(string); msg != "" {
				lines[msg] = m
			}
		}
	}
	if _, ok := lines["slog default kept"]; !ok {
		t.Fatalf("slog.Default() was not escale's after Init; stdout:\n%s", out)
	}
	if _, ok := lines["std log kept"]; !ok {
		t.Fatalf("the standard log package no longer reaches escale's handler; stdout:\n%s", out)
	}
	m, ok := lines["rclone line after init"]
	if !ok || m["component"] != "rclone" || m["level"] != "INFO" {
		t.Fatalf("rclone's log line did not reach escale's logger as info: %v; stdout:\n%s", m, out)
	}
	if strings.Contains(stderr.String(), "rclone line after init") {
		t.Fatalf("rclone still writes its own log to stderr:\n%s", stderr.String())
	}
}

func initChild() {
	escale := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	slog.SetDefault(escale)
	if err := storage.Init(storage.Options{RcloneConfig: os.Getenv("ESCALE_STORAGE_CONF")}); err != nil {
		slog.Error("init failed", "err", err)
		os.Exit(2)
	}
	if slog.Default() == escale {
		slog.Info("slog default kept")
	}
	log.Print("std log kept")
	fs.Logf(nil, "rclone line after init")
}
