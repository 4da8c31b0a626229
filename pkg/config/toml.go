package config

import (
	"fmt"
	"strings"
)

// QuoteTOML writes s as a TOML basic string, for configuration files and
// printouts that must read back as they were written.
func QuoteTOML(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// TOMLList writes l as a TOML array of strings.
func TOMLList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = QuoteTOML(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
