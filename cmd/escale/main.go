// Command escale keeps folders in sync between machines that cannot reach
// each other, through an encrypted store-and-forward relay.
package main

import (
	"os"

	"github.com/escale-sync/escale/pkg/cli"
)

func main() {
	stop := startProfiles()
	code := cli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
