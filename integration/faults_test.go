//go:build unix

package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/storage/testserver"
)

// Network faults: toxiproxy between the escale processes and each server.
// While the driver edits, the link gets latency, a bandwidth cap,
// connections cut mid-object, a server that stops answering, and a server
// that goes away and comes back. Every client must report the outage in
// `escale status`, recover by itself, and lose nothing.
func TestNetworkFaults(t *testing.T) {
	hold := 4 * time.Second
	if fullTorture() {
		hold = 15 * time.Second
	}
	for _, srv := range relayServers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			up := srv.start(t)
			p := testserver.Toxiproxy(t, up)
			seed := seedFor(t)
			w := newWorld(t, p.Spec, up.Dir, 3, seed, "")
			began := time.Now()
			r := row{Scenario: "network: latency, bandwidth cap, cuts mid-object, silent server, server restart", Server: up.Name, Runs: 1, Seed: seed}
			t.Cleanup(func() { r.Seconds = time.Since(began).Seconds(); report(t, r) })
			w.create()
			w.startAll()
			ctx, cancel := context.WithCancel(context.Background())
			edits := make(chan int)
			go func() { edits <- w.drive(ctx, 1<<30, true) }()

			phase := func(name string, toxics ...[4]any) {
				for i, tx := range toxics {
					p.AddToxic(t, fmt.Sprintf("%s%d", name, i), tx[0].(string), tx[1].(string), tx[2].(map[string]any))
					r.Faults++
				}
				time.Sleep(hold)
				for i := range toxics {
					p.RemoveToxic(t, fmt.Sprintf("%s%d", name, i))
				}
			}
			// 100-500 ms of latency each way.
			phase("latency",
				[4]any{"latency", "downstream", map[string]any{"latency": 300, "jitter": 200}},
				[4]any{"latency", "upstream", map[string]any{"latency": 300, "jitter": 200}})
			// 64 KB/s each way: big files take many seconds.
			phase("bandwidth",
				[4]any{"bandwidth", "downstream", map[string]any{"rate": 64}},
				[4]any{"bandwidth", "upstream", map[string]any{"rate": 64}})
			// Connections cut after 40 KB up or 60 KB down: objects break
			// mid-transfer, again and again.
			phase("cut",
				[4]any{"limit_data", "upstream", map[string]any{"bytes": 40000}},
				[4]any{"limit_data", "downstream", map[string]any{"bytes": 60000}})
			// Connections reset by peer 200 ms after they open.
			phase("reset", [4]any{"reset_peer", "upstream", map[string]any{"timeout": 200}})
			// The server stops answering: data is swallowed, connections are
			// closed after 3 s.
			phase("silent", [4]any{"timeout", "downstream", map[string]any{"timeout": 3000}})
			// The server goes away (connections refused) until every client's
			// status says so, then comes back.
			p.Proxy.Stop()
			r.Faults++
			downAt := time.Now()
			for _, c := range w.clients {
				deadline := time.Now().Add(90 * time.Second)
				for {
					st := c.status()
					if msg, _ := st["error"].(string); msg != "" {
						t.Logf("%s's status %.1fs into the outage: running=%v error=%q", c.name, time.Since(downAt).Seconds(), st["running"], msg)
						break
					}
					if time.Now().After(deadline) {
						t.Errorf("%s: status shows no error 90 s into the outage: %v", c.name, st)
						break
					}
					time.Sleep(300 * time.Millisecond)
				}
			}
			if err := p.Proxy.Start(); err != nil {
				t.Fatalf("restart the proxy: %v", err)
			}
			// Back up: every daemon recovers by itself within its backoff.
			for _, c := range w.clients {
				deadline := time.Now().Add(2 * time.Minute)
				for {
					st := c.status()
					if msg, _ := st["error"].(string); msg == "" {
						break
					}
					if time.Now().After(deadline) {
						t.Errorf("%s: still failing 2 min after the server came back: %v", c.name, st["error"])
						break
					}
					time.Sleep(300 * time.Millisecond)
				}
			}
			cancel()
			made := <-edits
			failed := 0
			for _, c := range w.clients {
				b, _ := os.ReadFile(c.logPath)
				failed += strings.Count(string(b), "round failed; retrying") + strings.Count(string(b), "cannot start the repository")
			}
			passes, _ := w.converge(8)
			v := w.check(w.clients)
			r.Checked, r.Lost = v.Checked, v.Lost
			r.Notes = fmt.Sprintf("3 clients, %d edits, %d failed rounds retried; rest after %d passes", made, failed, passes)
			if srv.name == "ftp" {
				r.Notes += "; FTP data connections bypass the proxy (control only)"
			}
		})
	}
}
