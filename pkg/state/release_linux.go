package state

import (
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// releaseMapped tells the kernel this process no longer needs the pages of
// the state file it has read through bbolt's read-only shared mapping. They
// stay in the page cache, and a later read faults them back in; only the
// process's resident set shrinks. A pass over every record of a big tree
// (the warm scan of a million files reads some 300 MB of records) would
// otherwise keep all of it counted as the process's memory.
//
// Within tx the mapping cannot move: bbolt remaps only when no read
// transaction is open. The address is passed as a plain integer to the
// system call: nothing in Go dereferences it.
func releaseMapped(tx *bolt.Tx) {
	data := tx.DB().Info().Data
	size := uintptr(tx.Size())
	if data == 0 || size == 0 {
		return
	}
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, data, size, unix.MADV_DONTNEED)
}
