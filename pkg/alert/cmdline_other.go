//go:build !unix && !windows

package alert

import "os/exec"

func setCmdLine(cmd *exec.Cmd, line string) {
	cmd.Args = []string{cmd.Path, "/C", line[len("cmd.exe /C "):]}
}
