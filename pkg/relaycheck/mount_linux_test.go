package relaycheck

import (
	"testing"

	"golang.org/x/sys/unix"
)

// mountReadOnly mounts a small read-only tmpfs on dir, unmounted at cleanup.
func mountReadOnly(dir string) error {
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_RDONLY, "size=1m"); err != nil {
		return err
	}
	return nil
}

func init() { cleanupMount = func(t *testing.T, dir string) { unix.Unmount(dir, 0) } }
