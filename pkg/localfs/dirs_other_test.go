//go:build !linux && !darwin

package localfs

import "time"

// cpuTime is not measured here.
func cpuTime() time.Duration { return 0 }
