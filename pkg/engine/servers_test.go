package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/storage"
	"github.com/escale-sync/escale/pkg/storage/testserver"
)

// The engine over real servers: backend differences (no mtimes, no hashes,
// listing caches, FTP's quirks) must not matter to the protocol.
func TestEngineOverRealServers(t *testing.T) {
	servers := []func(testing.TB) *testserver.Server{testserver.RcloneSFTP, testserver.RcloneWebDAV, testserver.OpenSSH, testserver.ApacheDAV}
	if !testing.Short() {
		servers = append(servers, testserver.RcloneS3, testserver.PureFTPd)
	}
	for _, start := range servers {
		srv := start(t)
		t.Run(srv.Name, func(t *testing.T) {
			w := newWorld(t)
			clientOn := func(name string) *client {
				relay, err := storage.Open(context.Background(), srv.Spec)
				if err != nil {
					t.Fatal(err)
				}
				return w.clientWithRelay(name, relay)
			}
			a, b := clientOn("alpha"), clientOn("beta")
			a.write("docs/a.txt", "from alpha", time.Time{})
			if err := os.WriteFile(filepath.Join(a.dir, "big.bin"), randomBytes(t, 2<<20+7), 0o644); err != nil {
				t.Fatal(err)
			}
			a.round()
			b.round()
			sameTrees(t, a, b)
			b.write("docs/a.txt", "edited on beta", time.Time{})
			os.Remove(filepath.Join(b.dir, "big.bin"))
			b.round()
			a.round()
			sameTrees(t, a, b)
			b.round()
			a.round()
			// The relay kept only metadata: no data object or manifest is left.
			relay, err := storage.Open(context.Background(), srv.Spec)
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			if err := relay.Walk(context.Background(), "clients", func(e storage.Entry) error {
				if strings.Contains(e.Name, "/data/") || strings.Contains(e.Name, "/log/") {
					left = append(left, e.Name)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(left) > 0 {
				t.Fatalf("relay still holds %v", left)
			}
		})
	}
}
