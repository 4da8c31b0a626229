package logging

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLevelsAndFormats(t *testing.T) {
	var buf bytes.Buffer
	log, closeFn, err := New(Options{Level: "warn", Format: "json", Stderr: &buf})
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	log.Info("hidden")
	log.Warn("shown", "repo", "work")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one line at warn level, got %q", buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if rec["msg"] != "shown" || rec["repo"] != "work" {
		t.Fatalf("unexpected record %v", rec)
	}
}

func TestBadOptions(t *testing.T) {
	if _, _, err := New(Options{Level: "loud"}); err == nil || !strings.Contains(err.Error(), "debug, info, warn or error") {
		t.Fatalf("bad level: %v", err)
	}
	if _, _, err := New(Options{Format: "xml"}); err == nil || !strings.Contains(err.Error(), "text or json") {
		t.Fatalf("bad format: %v", err)
	}
}

func TestRotatedFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "logs", "escale.log")
	log, closeFn, err := New(Options{File: file, MaxSizeMB: 1, MaxBackups: 2})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 4096)
	for i := 0; i < 600; i++ { // ~2.4 MB: at least one rotation
		log.Info(big, "i", i)
	}
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Dir(file))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 2 {
		t.Fatalf("want the log and at least one rotated backup, got %d files", len(entries))
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 1<<20+8192 {
		t.Fatalf("current log is %d bytes, over the 1 MB rotation size", st.Size())
	}
}
