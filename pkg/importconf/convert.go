// Package importconf converts a configuration of the original (Python)
// escale, an INI file, into escale's TOML (`escale import-config`). It maps
// every option and its aliases (ORIGINAL.md §3.2), converts the values,
// keeps secrets out of the TOML, and lists what has no equivalent.
package importconf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/escale-sync/escale/pkg/config"
)

// Options of a conversion.
type Options struct {
	// SecretDir is the folder where passphrase files are to be written
	// (Result.Secrets) and from which the TOML refers to them; default the
	// old file's folder. Made absolute.
	SecretDir string
	// Now stamps the header; default time.Now.
	Now func() time.Time
}

// Note is an old option with no (or only a partial) equivalent.
type Note struct {
	File    string
	Line    int    // 0: about the whole file
	Section string // "" for the file, "DEFAULT" for the globals
	Option  string
	Msg     string
}

func (n Note) String() string {
	var b strings.Builder
	b.WriteString(n.File)
	if n.Line > 0 {
		fmt.Fprintf(&b, ":%d", n.Line)
	}
	b.WriteString(": ")
	if n.Section != "" {
		fmt.Fprintf(&b, "[%s] ", n.Section)
	}
	if n.Option != "" {
		fmt.Fprintf(&b, "%s: ", n.Option)
	}
	b.WriteString(n.Msg)
	return b.String()
}

// Secret is a file to write with mode 0600 before the TOML is used.
type Secret struct {
	Path string
	Data []byte
}

// Result of a conversion.
type Result struct {
	TOML    []byte
	Notes   []Note
	Secrets []Secret
}

// Error lists every bad value of the old file.
type Error struct{ Problems []*LineError }

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// entry is one TOML line with the comment above it.
type entry struct{ key, value, comment string }

type table struct {
	name    string
	from    string
	entries []entry
}

// converter holds one conversion's state.
type converter struct {
	f       *iniFile
	opts    Options
	dir     string // the old file's folder
	notes   []Note
	errs    []*LineError
	secrets map[string]Secret
	global  table
}

// Convert reads the old INI file data (name is used in messages and to
// resolve relative paths) and returns the TOML.
func Convert(name string, data []byte, opts Options) (*Result, error) {
	f, err := parseINI(name, data)
	if err != nil {
		var le *LineError
		if errors.As(err, &le) {
			return nil, &Error{Problems: []*LineError{le}}
		}
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return nil, err
	}
	c := &converter{f: f, opts: opts, dir: filepath.Dir(abs), secrets: map[string]Secret{}}
	if c.opts.SecretDir == "" {
		c.opts.SecretDir = c.dir
	}
	if c.opts.SecretDir, err = filepath.Abs(c.opts.SecretDir); err != nil {
		return nil, err
	}
	if len(f.sections) == 0 {
		return nil, &Error{Problems: []*LineError{{name, 1, "no [section]: each repository of the original escale is a section such as [documents]; add one"}}}
	}
	var tables []table
	c.globals()
	c.checkDup("DEFAULT", 1, c.global.entries)
	for _, s := range f.sections {
		t := c.section(s)
		c.checkDup(s.name, s.line, t.entries)
		tables = append(tables, t)
	}
	if len(c.errs) > 0 {
		return nil, &Error{Problems: c.errs}
	}
	sort.SliceStable(c.notes, func(i, j int) bool { return c.notes[i].Line < c.notes[j].Line })
	out := c.render(tables)
	if err := c.check(out); err != nil {
		return nil, err
	}
	res := &Result{TOML: out, Notes: c.notes}
	for _, p := range sortedKeys(c.secrets) {
		res.Secrets = append(res.Secrets, c.secrets[p])
	}
	return res, nil
}

func (c *converter) note(sec string, o *option, format string, args ...any) {
	n := Note{File: c.f.name, Section: sec, Msg: fmt.Sprintf(format, args...)}
	if o != nil {
		n.Line, n.Option = o.line, o.key
	}
	c.notes = append(c.notes, n)
}

func (c *converter) fail(o *option, format string, args ...any) {
	c.errs = append(c.errs, &LineError{c.f.name, o.line, fmt.Sprintf("%s = %s: ", o.key, o.value) + fmt.Sprintf(format, args...)})
}

// checkDup rejects two old options that land on one key, such as
// "include" and "pattern" in one section.
func (c *converter) checkDup(sec string, line int, entries []entry) {
	seen := map[string]string{}
	for _, e := range entries {
		if prev, ok := seen[e.key]; ok {
			c.errs = append(c.errs, &LineError{c.f.name, line, fmt.Sprintf("[%s]: %s and %s both set %s; keep one", sec, prev, e.comment, e.key)})
			continue
		}
		seen[e.key] = e.comment
	}
}

// field is the canonical name of an option.
func field(o *option) string { return aliases[normName(o.key)] }

// perSection fields combine several options, or depend on the section, so
// they are resolved per section with DEFAULT inherited.
var perSection = map[string]bool{
	"path": true, "address": true, "directory": true, "port": true, "username": true, "password": true, "protocol": true,
	"encryption": true, "passphrase": true, "push_only": true, "pull_only": true, "mode": true, "refresh": true,
}

// globalOnly fields were read from DEFAULT only.
var globalOnly = map[string]bool{"log_file": true, "log_level": true, "log_rotate": true, "keep_alive": true, "cache": true,
	"rclone_binary": true, "drive_binary": true}

// globals converts DEFAULT: the global keys, and the repository keys every
// section inherits (written at the top of the TOML, which escale inherits
// the same way).
func (c *converter) globals() {
	c.global = table{}
	for _, o := range c.f.defaults.options {
		fd := field(o)
		switch {
		case fd == "":
			c.note("DEFAULT", o, "not an option of the original escale either; ignored")
		case perSection[fd]:
		case globalOnly[fd] || fd == "verbosity":
			c.globalOption(fd, o)
		default:
			c.global.entries = append(c.global.entries, c.simple("DEFAULT", fd, o)...)
		}
	}
}

func (c *converter) globalOption(fd string, o *option) {
	add := func(key, value string) {
		c.global.entries = append(c.global.entries, entry{key, value, fmt.Sprintf("from %q (line %d)", o.key, o.line)})
	}
	switch fd {
	case "log_file":
		add("log_file", config.QuoteTOML(c.absPath(o.value)))
	case "log_level", "verbosity":
		if fd == "verbosity" {
			n, err := strconv.Atoi(strings.TrimSpace(o.value))
			if err != nil {
				c.fail(o, "not a number; the original read a verbosity level such as 1 or 2")
				return
			}
			if lvl := c.f.defaults.byKey["log level"]; lvl != nil {
				c.note("DEFAULT", o, "escale has one log level; %q (line %d) is used", lvl.key, lvl.line)
				return
			}
			if n >= 2 {
				add("log_level", config.QuoteTOML("debug"))
			}
			return
		}
		lvl, ok := map[string]string{"debug": "debug", "10": "debug", "info": "info", "20": "info", "warning": "warn", "warn": "warn", "30": "warn",
			"error": "error", "40": "error", "critical": "error", "50": "error"}[strings.ToLower(strings.TrimSpace(o.value))]
		if !ok {
			c.fail(o, "not a log level; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
			return
		}
		add("log_level", config.QuoteTOML(lvl))
		c.note("DEFAULT", o, "the original's log level was the log file's only (the terminal showed INFO); escale uses it for both")
	case "log_rotate":
		n, err := strconv.Atoi(strings.TrimSpace(o.value))
		if err != nil || n < 0 {
			c.fail(o, "not a number of rotated files; the original read e.g. 3")
			return
		}
		add("log_rotate", fmt.Sprintf("{ size = %s, keep = %d }", config.QuoteTOML("1MiB"), n))
	case "cache":
		add("state_dir", config.QuoteTOML(c.absPath(o.value)))
		c.note("DEFAULT", o, "escale keeps a different state there; the original's cache files are not reused")
	default:
		c.note("DEFAULT", o, "no equivalent: %s", noEquivalent[fd])
	}
}

// simple converts the options that map one to one, where they are written.
func (c *converter) simple(sec, fd string, o *option) []entry {
	from := fmt.Sprintf("from %q (line %d)", o.key, o.line)
	one := func(key, value string) []entry { return []entry{{key, value, from}} }
	v := strings.TrimSpace(o.value)
	switch fd {
	case "clientname":
		name := cleanName(v)
		if name != v {
			c.note(sec, o, "%q becomes %q: escale client names use letters, digits, \"-\", \"_\" and \".\"", v, name)
		}
		return one("client", config.QuoteTOML(name))
	case "filetype":
		return one("extensions", config.TOMLList(splitList(v)))
	case "include", "exclude", "includedirectory", "excludedirectory":
		var pats []string
		for _, p := range splitList(v) {
			q, err := convertPattern(p)
			if err != nil {
				c.fail(o, "%v", err)
				return nil
			}
			pats = append(pats, q)
		}
		key := map[string]string{"include": "include", "exclude": "exclude", "includedirectory": "include_dirs", "excludedirectory": "exclude_dirs"}[fd]
		if fd == "include" || fd == "exclude" {
			c.note(sec, o, "escale globs match whole names: \"*.txt\" no longer matches \"a.txt.bak\" as it did in the original")
		}
		return one(key, config.TOMLList(pats))
	case "quota":
		if b, ok := parseBool(v); ok && !b {
			return nil
		}
		n, err := parseSize(v)
		if err != nil {
			c.fail(o, "%v", err)
			return nil
		}
		if !strings.ContainsFunc(v, unicode.IsLetter) {
			c.note(sec, o, "a size without a unit was read as MB by the original; written as %s", config.FormatSize(n))
		}
		return one("quota", config.QuoteTOML(config.FormatSize(n)))
	case "maxpagesize":
		n, err := parseSize(v)
		if err != nil {
			c.fail(o, "%v", err)
			return nil
		}
		if n < 64<<10 || n > 4<<30 {
			c.note(sec, o, "%s is outside escale's range (64KiB to 4GiB); escale's default is kept", config.FormatSize(n))
			return nil
		}
		return one("max_pack_size", config.QuoteTOML(config.FormatSize(n)))
	case "maintainer":
		return one("maintainer", config.QuoteTOML(v))
	case "count":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			c.fail(o, "not a number of pullers; write a whole number such as 1")
			return nil
		}
		return one("pullers", strconv.Itoa(n))
	case "index":
		if b, ok := parseBool(v); ok {
			if !b {
				c.note(sec, o, "escale always keeps an index on the relay; nothing to set")
			}
			return nil
		}
		kind, n, _ := strings.Cut(strings.ToLower(v), ":")
		if kind != "topdir" {
			c.fail(o, `not an index setting; the original read a boolean or "topdir[:n]"`)
			return nil
		}
		if n == "" {
			return one("index", config.QuoteTOML("topdir:1"))
		}
		if k, err := strconv.Atoi(n); err != nil || k < 1 {
			c.fail(o, `"topdir:n" needs a whole number n of at least 1`)
			return nil
		}
		return one("index", config.QuoteTOML("topdir:"+n))
	case "locktimeout":
		c.note(sec, o, "escale refreshes its locks while it holds them and clears unrefreshed ones after lock_timeout (default 10m); the old value is not carried over, since a long timeout only delays recovery after a crash")
		return nil
	case "timestamp":
		if b, ok := parseBool(v); ok && b {
			return nil
		}
		c.note(sec, o, "escale always keeps modification times and has no placeholder time format; nothing to set")
		return nil
	case "verbosity":
		c.note(sec, o, "escale's log level is global (log_level); set it at the top of the file")
		return nil
	}
	if globalOnly[fd] {
		c.note(sec, o, "the original read this option only before the first section (DEFAULT); ignored here")
		return nil
	}
	if why, ok := noEquivalent[fd]; ok {
		c.note(sec, o, "no equivalent: %s", why)
		return nil
	}
	c.note(sec, o, "not converted")
	return nil
}

// absPath makes a path from the old file absolute, relative to its folder.
func (c *converter) absPath(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.dir, p)
}

// section converts one repository.
func (c *converter) section(s *section) table {
	name := cleanName(s.name)
	if name != s.name || strings.Contains(name, ".") {
		name = strings.ReplaceAll(name, ".", "-")
		c.note(s.name, nil, "the section becomes [repository.%s]: repository names use letters, digits, \"-\" and \"_\"", name)
	}
	t := table{name: name, from: fmt.Sprintf("[%s], line %d", s.name, s.line)}
	get := func(fd string) *option {
		for _, o := range s.options {
			if field(o) == fd {
				return o
			}
		}
		for _, o := range c.f.defaults.options {
			if field(o) == fd {
				return o
			}
		}
		return nil
	}
	from := func(o *option) string { return fmt.Sprintf("from %q (line %d)", o.key, o.line) }
	seen := map[string]*option{}
	for _, o := range s.options {
		if fd := field(o); fd != "" {
			if prev, ok := seen[fd]; ok {
				c.errs = append(c.errs, &LineError{c.f.name, o.line, fmt.Sprintf("%q and %q (line %d) are two names of one option in [%s]; keep one", o.key, prev.key, prev.line, s.name)})
			}
			seen[fd] = o
		}
	}

	if o := get("path"); o != nil {
		t.entries = append(t.entries, entry{"path", config.QuoteTOML(c.absPath(strings.TrimSpace(o.value))), from(o)})
	} else {
		c.errs = append(c.errs, &LineError{c.f.name, s.line, fmt.Sprintf("[%s] has no \"local path\"; the original required it too", s.name)})
	}
	if e, ok := c.relay(s, name, get); ok {
		t.entries = append(t.entries, e)
	}
	t.entries = append(t.entries, c.mode(s, get)...)
	t.entries = append(t.entries, c.refresh(s, get)...)
	t.entries = append(t.entries, c.encryption(s, name, get)...)
	for _, o := range s.options {
		fd := field(o)
		switch {
		case fd == "":
			c.note(s.name, o, "not an option of the original escale either; ignored")
		case perSection[fd]:
		default:
			t.entries = append(t.entries, c.simple(s.name, fd, o)...)
		}
	}
	return t
}

// mode merges mode, push only and pull only.
func (c *converter) mode(s *section, get func(string) *option) []entry {
	mode := ""
	var src *option
	if o := get("mode"); o != nil {
		m := strings.ToLower(strings.TrimSpace(o.value))
		if m == "preservative" {
			m = "conservative"
		}
		switch m {
		case "shared", "upload", "download", "conservative":
		default:
			c.fail(o, `not a mode; the original read "shared", "upload", "download" or "conservative"`)
			return nil
		}
		mode, src = m, o
	}
	push, pull := get("push_only"), get("pull_only")
	on := func(o *option) bool {
		if o == nil {
			return false
		}
		b, ok := parseBool(o.value)
		if !ok {
			c.fail(o, "not a boolean; use yes or no")
		}
		return b
	}
	pushOn, pullOn := on(push), on(pull)
	switch {
	case pushOn && pullOn:
		c.fail(push, "push only and pull only are both set; the original refused to start with both: keep one")
		return nil
	case pushOn || pullOn:
		o, m := push, "upload"
		if pullOn {
			o, m = pull, "download"
		}
		if mode != "" && mode != m {
			c.fail(o, "contradicts mode = %s (line %d); keep one", mode, src.line)
			return nil
		}
		mode, src = m, o
	}
	if mode == "" {
		return nil
	}
	return []entry{{"mode", config.QuoteTOML(mode), fmt.Sprintf("from %q (line %d)", src.key, src.line)}}
}

// refresh converts the longest sleep between rounds. The original slept
// refresh/2 at first, so a short refresh also lowers min_poll.
func (c *converter) refresh(s *section, get func(string) *option) []entry {
	o := get("refresh")
	if o == nil {
		return nil
	}
	if b, ok := parseBool(o.value); ok {
		if !b {
			c.note(s.name, o, "escale always polls the relay; the default (max_poll = 5m) is kept")
		}
		return nil
	}
	d, err := parseSeconds(o.value)
	if err != nil {
		c.fail(o, "%v", err)
		return nil
	}
	from := fmt.Sprintf("from %q (line %d), in seconds", o.key, o.line)
	out := []entry{{"max_poll", config.QuoteTOML(config.FormatDuration(d)), from}}
	if d < config.DefaultMinPoll {
		out = append(out, entry{"min_poll", config.QuoteTOML(config.FormatDuration(d / 2)), "the original's first sleep was refresh/2"})
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// exists reports whether p names a regular file.
func exists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
