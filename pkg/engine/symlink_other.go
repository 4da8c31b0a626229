//go:build !unix

package engine

import "time"

// setSymlinkTime is not supported here; symlink mtimes are left as created.
func setSymlinkTime(string, time.Time) error { return nil }
