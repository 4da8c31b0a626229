package localfs

import (
	"path"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	conflictMarker = ".sync-conflict-"
	conflictLayout = "20060102-150405"
	maxExt         = 32 // bytes, dot included
	maxClient      = 64 // bytes of the client part
)

// conflictRe matches a base name produced by ConflictName. The client part never holds a dot
// (ConflictName replaces them), so the optional extension is unambiguous.
var conflictRe = regexp.MustCompile(`.\.sync-conflict-[0-9]{8}-[0-9]{6}-[^./]+(\.[^./]+)?$`)

// ConflictName names the losing copy of a conflict: "dir/name.sync-conflict-<yyyymmdd-hhmmss>-<client>.ext".
// Every client must derive the same name for the same conflict, so t is taken in UTC. The last
// extension is kept (a.tar.gz → a.tar.sync-conflict-…-c.gz) so the copy still opens with the
// same program; dotfiles (".bashrc") and names without an extension get the marker at the end.
// The client name is reduced to letters, digits, '-' and '_', and the stem is shortened if the
// result would exceed MaxSegment bytes.
func ConflictName(name string, t time.Time, client string) string {
	dir, base := path.Split(name)
	stem, ext := base, ""
	// A "extension" longer than maxExt is part of the name, not a file type.
	if i := strings.LastIndexByte(base, '.'); i > 0 && i < len(base)-1 && len(base)-i <= maxExt {
		stem, ext = base[:i], base[i:]
	}
	marker := conflictMarker + t.UTC().Format(conflictLayout) + "-" + sanitizeClient(client)
	// The budget is at least MaxSegment-maxExt-len(marker) > 100 bytes, so the stem never vanishes.
	stem = truncateUTF8(stem, MaxSegment-len(marker)-len(ext))
	return dir + stem + marker + ext
}

// IsConflictName reports whether name's last segment was produced by ConflictName.
func IsConflictName(name string) bool {
	return conflictRe.MatchString(path.Base(name))
}

func sanitizeClient(client string) string {
	var b strings.Builder
	for _, r := range client {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return truncateUTF8(b.String(), maxClient)
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
