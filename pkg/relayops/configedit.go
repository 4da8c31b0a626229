package relayops

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/escale-sync/escale/pkg/config"
)

// RelayLine is the TOML line that sets a repository's relay to spec.
func RelayLine(spec string) string { return "relay = " + tomlString(spec) }

// tomlString quotes s for TOML: a literal string when it can be one (no
// escapes to get wrong), else a basic string.
func tomlString(s string) string {
	literal := !strings.ContainsAny(s, "'\r\n")
	for _, c := range s {
		if c < 0x20 && c != '\t' || c == 0x7f {
			literal = false
		}
	}
	if literal {
		return "'" + s + "'"
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, c)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

var (
	tableRE = regexp.MustCompile(`^\s*\[([^\[\]]+)\]\s*(#.*)?$`)
	relayRE = regexp.MustCompile(`^(\s*)(relay|"relay"|'relay')\s*=\s*(.*)$`)
	// remoteNameRE is the configuration's (and rclone's) remote name rule.
	remoteNameRE = regexp.MustCompile(`^[\w.@+ -]+$`)
)

// tableKey splits a TOML table header's dotted key, unquoting its parts.
func tableKey(s string) []string {
	var parts []string
	for _, p := range strings.Split(s, ".") {
		p = strings.TrimSpace(p)
		if len(p) >= 2 && (p[0] == '"' && p[len(p)-1] == '"' || p[0] == '\'' && p[len(p)-1] == '\'') {
			p = p[1 : len(p)-1]
		}
		parts = append(parts, p)
	}
	return parts
}

// valueEnd returns the length of the single-line TOML string at the start
// of v, or -1 when v does not start with one.
func valueEnd(v string) int {
	if strings.HasPrefix(v, `"""`) || strings.HasPrefix(v, "'''") {
		return -1
	}
	switch {
	case strings.HasPrefix(v, "'"):
		if i := strings.IndexByte(v[1:], '\''); i >= 0 {
			return i + 2
		}
	case strings.HasPrefix(v, `"`):
		for i := 1; i < len(v); i++ {
			switch v[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
	}
	return -1
}

// EditRelay returns the configuration text with the relay of
// [repository.NAME] set to spec, everything else (comments, order,
// spacing, a comment after the value) kept as it was. A table that
// inherits its relay gets its own relay line.
func EditRelay(text, repo, spec string) (string, error) {
	nl := "\n"
	if strings.Contains(text, "\r\n") {
		nl = "\r\n"
	}
	lines := strings.Split(text, nl)
	table, at := -1, -1
	for i, line := range lines {
		m := tableRE.FindStringSubmatch(line)
		if m != nil {
			if table >= 0 {
				break // the next table: our table has no relay line
			}
			if k := tableKey(m[1]); len(k) == 2 && k[0] == "repository" && k[1] == repo {
				table = i
			}
			continue
		}
		if table >= 0 && relayRE.MatchString(line) {
			if at >= 0 {
				return "", fmt.Errorf("[repository.%s] sets relay twice", repo)
			}
			at = i
		}
	}
	if table < 0 {
		return "", fmt.Errorf("no [repository.%s] table in the file (is it written another way?); set `%s` in it by hand", repo, RelayLine(spec))
	}
	if at < 0 {
		lines = append(lines[:table+1], append([]string{RelayLine(spec)}, lines[table+1:]...)...)
		return strings.Join(lines, nl), nil
	}
	m := relayRE.FindStringSubmatch(lines[at])
	end := valueEnd(m[3])
	if end < 0 {
		return "", fmt.Errorf("line %d: cannot rewrite this form of relay value; set `%s` by hand", at+1, RelayLine(spec))
	}
	rest := m[3][end:]
	if t := strings.TrimSpace(rest); t != "" && !strings.HasPrefix(t, "#") {
		return "", fmt.Errorf("line %d: unexpected text after the relay value; set `%s` by hand", at+1, RelayLine(spec))
	}
	lines[at] = m[1] + RelayLine(spec) + rest
	return strings.Join(lines, nl), nil
}

// SwitchRelay points repository repo of the configuration file at spec:
// the edited text must load and give repo the new relay; the old file is
// kept as FILE.bak, and the new one written to a temporary file, synced,
// and renamed over the old (a symlinked file is edited at its target).
// It returns the path of the backup.
func SwitchRelay(file, repo, spec string) (bak string, err error) {
	file, err = filepath.EvalSymlinks(file)
	if err != nil {
		return "", err
	}
	info, err := os.Stat(file)
	if err != nil {
		return "", err
	}
	old, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	text, err := EditRelay(string(old), repo, spec)
	if err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	before, berr := config.Parse(file, old, config.LoadOptions{})
	after, err := config.Parse(file, []byte(text), config.LoadOptions{})
	if err != nil {
		if berr == nil {
			return "", fmt.Errorf("%s: the edited configuration does not load (%v); set `%s` in [repository.%s] by hand", file, err, RelayLine(spec), repo)
		}
		// It did not load before either (a missing key file, ...): that is
		// not ours to fix, but the edit must have taken.
	} else if r := after.Repository(repo); r == nil || (before != nil && before.Repository(repo) != nil && r.Relay == before.Repository(repo).Relay) {
		return "", fmt.Errorf("%s: the edit did not change repository %s's relay; set `%s` in [repository.%s] by hand", file, repo, RelayLine(spec), repo)
	}
	bak = file + ".bak"
	if err := writeFileSynced(bak, old, info.Mode().Perm()); err != nil {
		return "", fmt.Errorf("keep a copy of the configuration: %w", err)
	}
	tmp := file + ".tmp"
	if err := writeFileSynced(tmp, []byte(text), info.Mode().Perm()); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return bak, nil
}

func writeFileSynced(name string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// AbsRelay makes a local-folder relay spec absolute, so the configuration
// does not depend on the directory migrate ran in. Remotes are returned
// as they are.
func AbsRelay(spec string) (string, error) {
	if strings.HasPrefix(spec, ":") {
		return spec, nil
	}
	// rclone's rule, as the configuration applies it: "name:path" is a
	// remote when name is a valid remote name (and not a Windows drive).
	name, _, found := strings.Cut(spec, ":")
	if found && remoteNameRE.MatchString(name) && !(runtime.GOOS == "windows" && len(name) == 1) {
		return spec, nil
	}
	return filepath.Abs(spec)
}
