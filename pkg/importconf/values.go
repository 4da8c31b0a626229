package importconf

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// parseBool reads a boolean as the original accepted it.
func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes", "1", "true", "on":
		return true, true
	case "no", "0", "false", "off":
		return false, true
	}
	return false, false
}

var sizeRE = regexp.MustCompile(`^(\d+)(?:[.,](\d+))?\s*([A-Za-z]*)$`)

// parseSize reads "<num>[.,<dec>] <unit>" as the original did: no unit
// means MB. A lower-case "b" (Kb, Mb, Gb…) is a decimal unit; KB, K, Ko,
// MB, M, Mo, MiB… are binary, the way the original grouped MB with MiB.
func parseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size; write a number with a unit, e.g. \"2GB\" or \"200 MB\"", s)
	}
	num, _ := strconv.ParseFloat(m[1]+"."+m[2]+"0", 64)
	unit := m[3]
	if unit == "" {
		unit = "MB"
	}
	prefixes := "KMGTPE"
	i := strings.IndexByte(prefixes, strings.ToUpper(unit[:1])[0])
	rest := unit[1:]
	if i < 0 {
		if strings.EqualFold(unit, "b") || strings.EqualFold(unit, "o") {
			return int64(num), nil
		}
		return 0, fmt.Errorf("%q: unknown unit %q; use K, M, G, T, P or E, with B, b, o or iB", s, unit)
	}
	var base float64
	switch rest {
	case "b":
		base = 1000
	case "", "B", "o", "iB", "io":
		base = 1024
	default:
		return 0, fmt.Errorf("%q: unknown unit %q; use K, M, G, T, P or E, with B, b, o or iB", s, unit)
	}
	v := num * math.Pow(base, float64(i+1))
	if v > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(math.Round(v)), nil
}

// parseSeconds reads a number of seconds (the original's refresh).
func parseSeconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f <= 0 || f > 1e9 {
		return 0, fmt.Errorf("%q is not a number of seconds; write e.g. 30", s)
	}
	return time.Duration(f * float64(time.Second)).Round(time.Millisecond), nil
}

// splitList reads a comma-separated list, trimmed, without empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// convertPattern turns an original filter pattern into escale's form. A
// "/re/" (the trailing slash optional) stays a regular expression, anchored
// at the start as Python's re.match anchored it; anything else was a
// wildcard where only "*" was special, which is an escale glob once the
// characters special to globs are escaped.
func convertPattern(p string) (string, error) {
	if strings.HasPrefix(p, "/") && len(p) > 1 {
		re := strings.TrimSuffix(p[1:], "/")
		if !strings.HasPrefix(re, "^") {
			re = "^(?:" + re + ")"
		}
		if _, err := regexp.Compile(re); err != nil {
			return "", fmt.Errorf("%q is a Python regular expression Go cannot read (%v); rewrite it in RE2 syntax", p, err)
		}
		return "/" + re + "/", nil
	}
	return strings.NewReplacer(`\`, `\\`, `?`, `\?`, `[`, `\[`, `]`, `\]`, `{`, `\{`, `}`, `\}`).Replace(p), nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$`)

// cleanName makes a section or client name acceptable to escale.
func cleanName(s string) string {
	b := []rune(strings.TrimSpace(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '-'
		}
	}
	out := strings.TrimLeft(string(b), ".")
	if len(out) > 64 {
		out = out[:64]
	}
	if out == "" {
		out = "repository"
	}
	return out
}
