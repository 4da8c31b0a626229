// Command escale keeps folders in sync between machines that cannot reach
// each other, through an encrypted store-and-forward relay.
package main

import (
	"os"
	"runtime/debug"

	"github.com/escale-sync/escale/pkg/cli"
)

// gcPercent is the collector's target unless GOGC says otherwise. Go's
// default (100) lets the heap grow to twice what is live before it
// collects; escale's live memory is a big tree's scan or a few transfer
// buffers, so 50 trades a little CPU for a third less peak memory
// (docs/BENCHMARKS.md).
const gcPercent = 50

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	stop := startProfiles()
	code := cli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
