package storagetest

import (
	"fmt"

	"github.com/rclone/rclone/fs/hash"
)

// hashOf computes the rclone hash called name ("md5", "sha1", ...) of b, to
// check what a backend reports against the bytes the suite wrote.
func hashOf(name string, b []byte) (string, error) {
	var t hash.Type
	if err := t.Set(name); err != nil {
		return "", fmt.Errorf("unknown hash %q: %w", name, err)
	}
	m, err := hash.NewMultiHasherTypes(hash.NewHashSet(t))
	if err != nil {
		return "", err
	}
	_, _ = m.Write(b)
	return m.Sums()[t], nil
}
