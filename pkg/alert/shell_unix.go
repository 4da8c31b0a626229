//go:build unix

package alert

import (
	"context"
	"os/exec"
	"syscall"
)

// shellCommand runs command with sh -c in its own process group, so the
// timeout kills everything it started, not only the shell.
func shellCommand(ctx context.Context, command string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}
