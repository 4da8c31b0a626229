package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
)

// TestBenchSmoke runs the whole harness at the smoke sizes, so the script
// stays alive: it builds escale and rclone, starts the loopback servers,
// and every figure it reports comes from a copy it checked byte for byte.
// It asserts what the harness measures, never how fast anything is.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds escale and rclone and runs them as processes")
	}
	var out bytes.Buffer
	o := options{
		sizes: "smoke", runs: 1, keys: []string{"x25519"},
		relays: []string{"local", "webdav"},
		work:   t.TempDir(), log: io.Discard,
		// A prebuilt binary, when the tree is mid-edit; else ./cmd/escale.
		escale: os.Getenv("ESCALE_BENCH_ESCALE"),
	}
	tables, err := bench(context.Background(), o, &out)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out.String())
	}
	workloads := map[string]bool{}
	var rows []*row
	for _, tab := range tables {
		workloads[tab.Workload] = true
		for _, r := range tab.Rows {
			for _, s := range r.Samples {
				if s.Wall <= 0 || s.RSS <= 0 {
					t.Errorf("%s, %s on %s: a process without wall time or RSS: %+v", tab.Title, r.Tool, r.Relay, s)
				}
			}
			if strings.HasPrefix(r.Tool, "escale") && len(r.Ratios) != len(r.Samples) {
				t.Errorf("%s, %s on %s: %d ratios for %d runs", tab.Title, r.Tool, r.Relay, len(r.Ratios), len(r.Samples))
			}
			if tab.Workload == "delta" {
				// escale sends a part of the file, the floor all of it.
				s := r.Samples[0]
				if strings.HasPrefix(r.Tool, "escale") && (s.Sent <= 0 || s.Sent >= s.Plain) {
					t.Errorf("delta, %s on %s: sent %d bytes of a %d-byte file", r.Tool, r.Relay, s.Sent, s.Plain)
				}
			}
			if tab.Workload == "small" && r.Relay == "webdav" {
				rows = append(rows, r)
			}
		}
	}
	if len(workloads) != len(workloadNames) {
		t.Fatalf("tables of %d workloads, want %d:\n%s", len(workloads), len(workloadNames), out.String())
	}
	// The WebDAV proxy sees the requests; the floor sends each small file
	// with its own PUT and fetches it with its own GET.
	if len(rows) != 2 {
		t.Fatalf("small files on webdav: %d rows, want the floor and escale:\n%s", len(rows), out.String())
	}
	floorDAV, escaleDAV := rows[0], rows[1]
	n := allSizes["smoke"].smallN
	if ft := floorDAV.Samples[0].Tally; ft.Requests["PUT"] != n || ft.Requests["GET"] != n {
		t.Errorf("floor over webdav: %s; want one PUT and one GET per file (%d)", ft.kinds(), n)
	}
	if et := escaleDAV.Samples[0].Tally; et.total() == 0 || et.Wire == 0 {
		t.Errorf("escale over webdav: no request or byte counted: %+v", et)
	}
	for _, want := range []string{"### ", "| local | floor", "| webdav | escale (x25519 key)", "warm: sync --once"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
