//go:build !unix

package alert

import (
	"context"
	"os"
	"os/exec"
)

// shellCommand runs command with cmd /C. The command line is passed as
// written: cmd.exe does its own parsing, which Go's argument quoting
// would garble.
func shellCommand(ctx context.Context, command string) *exec.Cmd {
	shell := os.Getenv("ComSpec")
	if shell == "" {
		shell = "cmd.exe"
	}
	cmd := exec.CommandContext(ctx, shell)
	setCmdLine(cmd, `cmd.exe /C `+command)
	return cmd
}
