package storage

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrInvalidName is wrapped by the (KindFatal) error a Relay method returns
// for a name it refuses. Such a name is a bug in the caller, never data.
var ErrInvalidName = errors.New("invalid relay name")

// checkName enforces the relay's name rules: relative, '/'-separated, no
// empty, "." or ".." segment, no backslash, no control character (NUL, and
// CR/LF that could smuggle commands into line protocols such as FTP), valid
// UTF-8. Nothing that passes can resolve outside the relay root on any
// backend. dirOK allows "" (the relay root) for directory arguments.
func checkName(name string, dirOK bool) error {
	if name == "" {
		if dirOK {
			return nil
		}
		return fmt.Errorf("%w: empty name", ErrInvalidName)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidName, name)
	}
	if strings.HasPrefix(name, "/") {
		return fmt.Errorf("%w %q: absolute; names are relative to the relay root", ErrInvalidName, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w %q: contains control character %U", ErrInvalidName, name, r)
		}
		if r == '\\' {
			return fmt.Errorf("%w %q: contains a backslash; use '/' to separate folders", ErrInvalidName, name)
		}
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w %q: empty path segment", ErrInvalidName, name)
		case ".", "..":
			return fmt.Errorf("%w %q: contains a %q segment", ErrInvalidName, name, seg)
		}
	}
	return nil
}
