package localfs

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// syncFilesystems flushes, with one syncfs(2) per filesystem, everything written under roots.
// It reports write-back errors of the whole filesystem (Linux ≥ 5.8), which per-file fsync
// calls made later could miss. dirty is not needed here.
func syncFilesystems(roots []string, _ []string) error {
	seen := map[uint64]bool{}
	for _, root := range roots {
		fi, err := os.Stat(root)
		if err != nil {
			return fmt.Errorf("sync %s: %w", root, err)
		}
		if dev, ok := fileDevice(fi); ok {
			if seen[dev] {
				continue
			}
			seen[dev] = true
		}
		if err := syncfs(root); err != nil {
			return err
		}
	}
	return nil
}

func syncfs(root string) error {
	d, err := os.Open(root)
	if err != nil {
		return fmt.Errorf("sync %s: %w", root, err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("syncfs on the filesystem of %s: %w; the disk may be failing, check the system log", root, err)
	}
	return nil
}
