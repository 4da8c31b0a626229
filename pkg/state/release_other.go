//go:build !linux

package state

import bolt "go.etcd.io/bbolt"

// releaseMapped is a Linux measure (release_linux.go); elsewhere the
// kernel reclaims the pages under memory pressure.
func releaseMapped(*bolt.Tx) {}
