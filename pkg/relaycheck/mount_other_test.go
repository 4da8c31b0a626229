//go:build !linux

package relaycheck

import (
	"errors"
	"testing"
)

func mountReadOnly(string) error { return errors.New("not on this OS") }

func init() { cleanupMount = func(*testing.T, string) {} }
