package localfs

import (
	"fmt"
	"runtime"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxSegment is the longest path segment, in bytes, that any supported OS accepts.
const MaxSegment = 255

// NameError says why a relative name was refused and which segment broke the rule.
type NameError struct {
	Name    string // the whole name as given
	Segment string // the offending segment, "" when the rule is about the whole name
	Reason  string // which rule, in words
}

func (e *NameError) Error() string {
	msg := fmt.Sprintf("invalid file name %q: %s", e.Name, e.Reason)
	if e.Segment != "" && e.Segment != e.Name {
		msg += fmt.Sprintf(" (segment %q)", e.Segment)
	}
	return msg + "; rename it on the machine where it was created"
}

// Portable is the OS for the rules every name on a relay must pass whatever
// the reader's OS: a name that breaks them is hostile. Names that only the
// reader's OS rejects are skipped there, one by one.
const Portable = "linux"

// ValidName checks a slash-separated relative name from the relay or the scanner. Names from the
// relay may be hostile, so this is strict: a name that passes can be joined to the folder root
// and stay below it, and is a legal file name on goos ("" means the running OS). Names that
// are reserved or invalid on goos are refused, never mangled.
func ValidName(name string, goos string) error {
	if goos == "" {
		goos = runtime.GOOS
	}
	bad := func(seg, reason string) error { return &NameError{Name: name, Segment: seg, Reason: reason} }
	if name == "" {
		return bad("", "empty name")
	}
	if (goos == "windows" || goos == "darwin") && !utf8.ValidString(name) {
		return bad("", "not valid UTF-8 (not representable on "+goos+")")
	}
	if name[0] == '/' {
		return bad("", "absolute path")
	}
	// A drive letter makes a name absolute (or drive-relative) on Windows; elsewhere "a:b.txt" is
	// an ordinary name.
	if goos == "windows" && len(name) >= 2 && name[1] == ':' && isASCIILetter(name[0]) {
		return bad(name[:2], "drive letter")
	}
	for seg := range strings.SplitSeq(name, "/") {
		if reason := segmentProblem(seg, goos); reason != "" {
			return bad(seg, reason)
		}
	}
	return nil
}

func segmentProblem(seg, goos string) string {
	switch {
	case seg == "":
		return "empty segment (leading, trailing or doubled slash)"
	case seg == "." || seg == "..":
		return `"." or ".." segment`
	case len(seg) > MaxSegment:
		return fmt.Sprintf("segment longer than %d bytes", MaxSegment)
	}
	for i := 0; i < len(seg); i++ {
		if seg[i] < 0x20 || seg[i] == 0x7f {
			return "NUL or control character"
		}
	}
	for _, r := range seg {
		if r != utf8.RuneError && unicode.IsControl(r) {
			return "control character"
		}
		if r == '\\' {
			return `backslash (a separator on Windows)`
		}
	}
	if goos != "windows" {
		return ""
	}
	if i := strings.IndexAny(seg, `<>:"|?*`); i >= 0 {
		return fmt.Sprintf("character %q is not allowed on Windows", seg[i])
	}
	if last := seg[len(seg)-1]; last == '.' || last == ' ' {
		return "ends with a dot or a space (not allowed on Windows)"
	}
	if isWindowsReserved(seg) {
		return "reserved device name on Windows"
	}
	return ""
}

// isWindowsReserved reports device names (CON, NUL, COM1 …) with any extension: older Windows
// versions open the device for "nul.txt" too, and spaces before the dot are ignored.
func isWindowsReserved(seg string) bool {
	base, _, _ := strings.Cut(seg, ".")
	base = strings.TrimRight(base, " ")
	switch strings.ToUpper(base) {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(base) < 4 {
		return false
	}
	prefix := strings.ToUpper(base[:3])
	if prefix != "COM" && prefix != "LPT" {
		return false
	}
	switch base[3:] {
	case "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "\u00b9", "\u00b2", "\u00b3":
		return true
	}
	return false
}

func isASCIILetter(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }
