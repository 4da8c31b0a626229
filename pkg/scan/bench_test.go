package scan

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkScanWarm measures a no-change rescan: every file's stat matches
// its cache record, so nothing is read. ESCALE_BENCH_FILES changes the tree
// size (default 100000; the design target is 1,000,000 in ≤ 15 s and
// ≤ 400 MB on 2 cores).
func BenchmarkScanWarm(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a large tree")
	}
	n := 100_000
	if v := os.Getenv("ESCALE_BENCH_FILES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	root := b.TempDir()
	const perDir = 100
	for i := 0; i < n; i++ {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", i/perDir/32), fmt.Sprintf("s%03d", i/perDir%32))
		if i%perDir == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		name := filepath.Join(dir, fmt.Sprintf("file-%07d.txt", i))
		if err := os.WriteFile(name, []byte(fmt.Sprintf("content of file %d\n", i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	window := 100 * time.Millisecond
	time.Sleep(2 * window)
	s := &Scanner{Root: root, Cache: openCache(b), RacyWindow: window}
	scan := func() Stats {
		st, err := s.Scan(context.Background(), func(Entry) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	if st := scan(); st.Files != n || st.Hashed != n {
		b.Fatalf("cold scan: %+v", st)
	}
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if st := scan(); st.Files != n || st.Hashed != 0 {
			b.Fatalf("warm scan read files: hashed %d of %d", st.Hashed, st.Files)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
	if mb := peakRSSMB(); mb > 0 {
		b.ReportMetric(mb, "peak-RSS-MB")
	}
}

// peakRSSMB is the process's high-water resident set (Linux), 0 elsewhere.
func peakRSSMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return float64(kb) / 1024
		}
	}
	return 0
}
