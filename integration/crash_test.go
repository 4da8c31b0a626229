//go:build unix

package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/storage/testserver"
)

// relayServers are the foundation's real servers, started in this process
// on 127.0.0.1; the escale processes reach them over TCP.
var relayServers = []struct {
	name  string
	start func(testing.TB) *testserver.Server
}{
	{"ftp", testserver.RcloneFTP},
	{"sftp", testserver.RcloneSFTP},
	{"webdav", testserver.RcloneWebDAV},
	{"s3", testserver.RcloneS3},
}

// Crash torture: three daemons per server push and pull while the driver
// edits their folders and a killer sends SIGKILL at random moments and
// restarts them. At rest nothing the driver saved is lost.
func TestCrashTorture(t *testing.T) {
	kills := 13 // per server: 52 in all
	if fullTorture() {
		kills = 130
	}
	for _, srv := range relayServers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			s := srv.start(t)
			seed := seedFor(t)
			w := newWorld(t, s.Spec, s.Dir, 3, seed, "")
			began := time.Now()
			r := row{Scenario: "crash: kill -9 while pushing and pulling", Server: s.Name, Runs: 1, Seed: seed}
			t.Cleanup(func() { r.Seconds = time.Since(began).Seconds(); report(t, r) })
			w.create()
			w.startAll()
			// The driver edits until the killer has made its kills.
			ctx, cancel := context.WithCancel(context.Background())
			edits := make(chan int)
			go func() { edits <- w.drive(ctx, 1<<30, true) }()
			r.Kills = w.killer(context.Background(), kills)
			cancel()
			made := <-edits
			passes, _ := w.converge(8)
			v := w.check(w.clients)
			r.Checked, r.Lost = v.Checked, v.Lost
			r.Notes = fmt.Sprintf("3 clients, %d edits, %d versions (%d superseded by their own writer, %d of those found anyway); rest after %d passes", made, v.Versions, v.Versions-v.Checked, v.Found, passes)
			if w.exit143 > 0 {
				r.Notes += fmt.Sprintf("; %d daemons exited 143 on SIGTERM (rclone atexit bug)", w.exit143)
			}
		})
	}
}
