package config

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1024", 1024},
		{"2GB", 2_000_000_000},
		{"512 MiB", 512 << 20},
		{"100KB", 100_000},
		{"1KiB", 1024},
		{"1.5KiB", 1536},
		{"1.5gb", 1_500_000_000},
		{"  7 mb ", 7_000_000},
		{"3TiB", 3 << 40},
		{"12b", 12},
	}
	for _, c := range good {
		got, err := ParseSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	bad := []string{"", "-1", "-5MB", "2 giga", "2G", "1.0001KB", "MB", "1e9", "0x10", "9999999TB", "5 MB extra", "1.5", "8EB"}
	for _, in := range bad {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), in) && in != "" {
			t.Errorf("ParseSize(%q) error %q does not quote the input", in, err)
		}
	}
	_, err := ParseSize("2 giga")
	if want := `"2 giga" is not a size; use a number with KB, MB, GB, KiB, MiB or GiB`; err == nil || err.Error() != want {
		t.Errorf("ParseSize(2 giga) error = %v, want %s", err, want)
	}
}

func TestParseDuration(t *testing.T) {
	good := []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"30d", 30 * 24 * time.Hour},
		{"2w", 14 * 24 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"1d 12h", 36 * time.Hour},
		{"1h30m", 90 * time.Minute},
		{"1.5h", 90 * time.Minute},
		{".5d", 12 * time.Hour},
		{"500ms", 500 * time.Millisecond},
		{"90s", 90 * time.Second},
		{"1w2d3h4m5s", (9*24+3)*time.Hour + 4*time.Minute + 5*time.Second},
	}
	for _, c := range good {
		got, err := ParseDuration(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	bad := []string{"", "5", "-1h", "5 min", "1y", "d", "1d-2h", "abc", "100000000w", "1h 30", "1.2.3s"}
	for _, in := range bad {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

// Format* must give back what Parse* reads, for any value.
func TestFormatRoundTrip(t *testing.T) {
	for _, n := range []int64{0, 1, 999, 1000, 1024, 1500, 16 << 20, 2_000_000_000, 5 << 40, math.MaxInt64} {
		s := FormatSize(n)
		got, err := ParseSize(s)
		if err != nil || got != n {
			t.Errorf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, s, got, err)
		}
	}
	if got := FormatSize(16 << 20); got != "16MiB" {
		t.Errorf("FormatSize(16MiB) = %q", got)
	}
	for _, d := range []time.Duration{0, time.Second, 90 * time.Second, 36 * time.Hour, 30 * 24 * time.Hour, 1500 * time.Millisecond, 24*time.Hour + time.Second} {
		s := FormatDuration(d)
		got, err := ParseDuration(s)
		if err != nil || got != d {
			t.Errorf("ParseDuration(FormatDuration(%v) = %q) = %v, %v", d, s, got, err)
		}
	}
	if got := FormatDuration(30 * 24 * time.Hour); got != "30d" {
		t.Errorf("FormatDuration(30d) = %q", got)
	}
}

func TestEditDistanceAndSuggestion(t *testing.T) {
	for _, c := range []struct {
		a, b string
		d    int
	}{{"puller", "pullers", 1}, {"mdoe", "mode", 1}, {"", "abc", 3}, {"kitten", "sitting", 3}, {"same", "same", 0}} {
		if got := editDistance(c.a, c.b); got != c.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.d)
		}
	}
	if got := closest("zzz", repoKeys); got != "" {
		t.Errorf("closest(zzz) = %q, want no suggestion", got)
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 64 << 20: "64.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
