package localfs

import (
	"strings"
	"testing"
	"time"
)

func TestConflictName(t *testing.T) {
	at := time.Date(2026, 11, 25, 14, 30, 5, 999, time.UTC)
	paris := at.In(time.FixedZone("CET", 3600))
	tests := []struct {
		name   string
		t      time.Time
		client string
		want   string
	}{
		{"report.docx", at, "laptop", "report.sync-conflict-20261125-143005-laptop.docx"},
		{"dir/sub/notes.txt", at, "laptop", "dir/sub/notes.sync-conflict-20261125-143005-laptop.txt"},
		{"a.tar.gz", at, "pc", "a.tar.sync-conflict-20261125-143005-pc.gz"},
		{".bashrc", at, "pc", ".bashrc.sync-conflict-20261125-143005-pc"},
		{"cfg/.config.json", at, "pc", "cfg/.config.sync-conflict-20261125-143005-pc.json"},
		{"Makefile", at, "pc", "Makefile.sync-conflict-20261125-143005-pc"},
		{"trailing.", at, "pc", "trailing..sync-conflict-20261125-143005-pc"},
		// Same instant in another zone: every client must derive the same name.
		{"x.txt", paris, "pc", "x.sync-conflict-20261125-143005-pc.txt"},
		// Client names cannot smuggle separators or dots into the name.
		{"x.txt", at, "../evil/host.lan", "x.sync-conflict-20261125-143005-___evil_host_lan.txt"},
		{"x.txt", at, "", "x.sync-conflict-20261125-143005-unknown.txt"},
		{"x." + strings.Repeat("e", 40), at, "pc", "x." + strings.Repeat("e", 40) + ".sync-conflict-20261125-143005-pc"},
	}
	for _, tc := range tests {
		got := ConflictName(tc.name, tc.t, tc.client)
		if got != tc.want {
			t.Errorf("ConflictName(%q, %q) = %q, want %q", tc.name, tc.client, got, tc.want)
		}
		if !IsConflictName(got) {
			t.Errorf("IsConflictName(%q) = false", got)
		}
		if IsConflictName(tc.name) {
			t.Errorf("IsConflictName(%q) = true for an ordinary name", tc.name)
		}
		if err := ValidName(got, "windows"); err != nil && ValidName(tc.name, "windows") == nil {
			t.Errorf("conflict name %q of a valid name is invalid: %v", got, err)
		}
	}
}

func TestConflictNameStaysWithinSegmentLimit(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, base := range []string{strings.Repeat("a", 250) + ".txt", strings.Repeat("é", 127), strings.Repeat("b", 255)} {
		got := ConflictName("d/"+base, at, strings.Repeat("c", 100))
		if err := ValidName(got, "linux"); err != nil {
			t.Errorf("ConflictName of a %d-byte name: %v", len(base), err)
		}
		if !IsConflictName(got) {
			t.Errorf("IsConflictName(%q) = false", got)
		}
		if strings.HasSuffix(base, ".txt") && !strings.HasSuffix(got, ".txt") {
			t.Errorf("extension lost: %q", got)
		}
	}
}

func TestIsConflictNameRejectsLookalikes(t *testing.T) {
	for _, name := range []string{
		"a.sync-conflict-2026112-143005-pc.txt",     // short date
		"a.sync-conflict-20261125-143005-.txt",      // no client
		"a.sync-conflict-20261125-143005-pc/x.txt",  // in a directory named like one
		".sync-conflict-20261125-143005-pc",         // nothing before the marker
		"a-sync-conflict-20261125-143005-pc.txt",    // no dot
		"a.sync-conflict-20261125-143005-pc.tar.gz", // two extensions after: not ours
	} {
		if IsConflictName(name) {
			t.Errorf("IsConflictName(%q) = true", name)
		}
	}
}
