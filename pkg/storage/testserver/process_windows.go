package testserver

import "os"

// The Debian servers do not run on Windows; these only keep the package
// building there for the in-process rclone servers.
func launches() []launch { return []launch{{}} }

func killGroup(p *os.Process) { _ = p.Kill() }
