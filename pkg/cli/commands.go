package cli

import (
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// commandSet lists constructors of the commands beyond "version"; each
// command lives in its own file of this package.
var commandSet = []func() *cli.Command{
	configCommand,
	syncCommand,
	relayCommand,
	completionCommand,
	accessCommand,
	statusCommand,
	lsCommand,
	importConfigCommand,
	keyCommand,
	repairCommand,
	initCommand,
	backupCommand, restoreCommand, migrateCommand,
}

// rcloneVersion reads the embedded rclone's module version from the build info.
func rcloneVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/rclone/rclone" {
				return d.Version
			}
		}
	}
	return "unknown"
}
