package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/knadh/koanf/parsers/toml/v2"
	envprovider "github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/v2"
	gotoml "github.com/pelletier/go-toml/v2"
)

// decoder turns the raw TOML tree into a Config, collecting problems.
type decoder struct {
	file, dir string
	opts      LoadOptions
	// envKeys maps the global keys set from the environment to their variable.
	envKeys  map[string]string
	problems []Problem
}

// add records a problem at key, attributed to the environment variable if
// the key's value came from there.
func (d *decoder) add(key, format string, args ...any) {
	p := Problem{File: d.file, Key: key, Msg: fmt.Sprintf(format, args...)}
	if v, ok := d.envKeys[key]; ok {
		p.File, p.Key = "environment", v
	}
	d.problems = append(d.problems, p)
}

// readTOML loads the file and the ESCALE_ overrides into one tree.
func (d *decoder) readTOML(src koanf.Provider) (map[string]any, bool) {
	data, err := src.ReadBytes()
	if err != nil {
		d.problems = append(d.problems, Problem{File: d.file, Msg: fmt.Sprintf("cannot read: %v", err)})
		return nil, false
	}
	k := koanf.New(".")
	if err := k.Load(bytesProvider(data), toml.Parser()); err != nil {
		line, col := errorPosition(data, err)
		d.problems = append(d.problems, Problem{File: d.file, Line: line, Column: col,
			Msg: "syntax error: " + strings.TrimPrefix(err.Error(), "toml: ") + "; see https://toml.io for the syntax"})
		return nil, false
	}
	d.envKeys = map[string]string{}
	environ := func() []string {
		var vars []string
		for _, key := range globalKeys {
			name := "ESCALE_" + strings.ToUpper(key)
			// An empty variable counts as unset, so `ESCALE_LOG_FILE= escale …`
			// clears an override the usual shell way.
			if v := d.opts.Getenv(name); v != "" {
				vars = append(vars, name+"="+v)
			}
		}
		return vars
	}
	err = k.Load(envprovider.Provider(".", envprovider.Opt{
		Prefix:      "ESCALE_",
		EnvironFunc: environ,
		TransformFunc: func(name, v string) (string, any) {
			key := strings.ToLower(strings.TrimPrefix(name, "ESCALE_"))
			d.envKeys[key] = name
			return key, v
		},
	}), nil)
	if err != nil {
		d.problems = append(d.problems, Problem{File: "environment", Msg: fmt.Sprintf("cannot read ESCALE_ variables: %v", err)})
		return nil, false
	}
	return k.Raw(), true
}

// errorPosition finds where a TOML error is. Parse errors carry their
// position; errors found after parsing (a key defined twice, a table
// redefined) do not, so the document is cut after each line until the
// same error appears: that line ends the offending expression.
func errorPosition(data []byte, err error) (line, col int) {
	var de *gotoml.DecodeError
	if errors.As(err, &de) {
		return de.Position()
	}
	lines := strings.SplitAfter(string(data), "\n")
	for n := 1; n <= len(lines); n++ {
		var m map[string]any
		e := gotoml.Unmarshal([]byte(strings.Join(lines[:n], "")), &m)
		if e != nil && !errors.As(e, &de) && e.Error() == err.Error() {
			l := lines[n-1]
			return n, len(l) - len(strings.TrimLeft(l, " \t")) + 1
		}
	}
	return 0, 0
}

// decode builds the Config from the raw tree.
func (d *decoder) decode(raw map[string]any) *Config {
	cfg := &Config{File: d.file, LogLevel: DefaultLogLevel, origin: map[string]string{},
		SMTPServer: DefaultSMTPServer, AlertInterval: DefaultAlertInterval, Settle: DefaultSettle,
		LogRotate: LogRotate{Size: DefaultLogRotateSize, Keep: DefaultLogRotateKeep}}
	defaults := builtinRepository()
	topKnown := append(append([]string{"repository"}, globalKeys...), repoKeys...)

	for _, key := range sortedKeys(raw) {
		v := raw[key]
		switch {
		case key == "repository":
		case contains(globalKeys, key):
			d.global(cfg, key, v)
		case repoOnlyKeys[key]:
			d.add(key, "%s belongs in a [repository.NAME] table: each repository has its own", key)
		case contains(repoKeys, key):
			// handled below, together, for the refresh alias
		default:
			d.add(key, "%s", unknownKeyMsg(key, topKnown))
		}
	}
	top := map[string]any{}
	for k, v := range raw {
		if contains(repoKeys, k) && !repoOnlyKeys[k] {
			top[k] = v
		}
	}
	d.applyTable("", top, &defaults, "top level")
	d.globalDefaults(cfg)
	cfg.Repositories = d.repositories(raw["repository"], defaults)
	d.crossCheck(cfg.Repositories)
	cfg.Warnings = d.envWarnings()
	return cfg
}

func builtinRepository() Repository {
	r := Repository{
		Mode:          ModeShared,
		PullerTimeout: DefaultPullerTimeout,
		Encryption:    EncryptionAge,
		MaxPackSize:   DefaultMaxPackSize,
		MinPoll:       DefaultMinPoll,
		MaxPoll:       DefaultMaxPoll,
		LockTimeout:   DefaultLockTimeout,
		MaxDelete:     DefaultMaxDelete,
		origin:        map[string]string{},
	}
	for k := range repoFields {
		r.origin[k] = "default"
	}
	return r
}

// clone copies r so that a repository's settings never alias the defaults'.
func (r Repository) clone() Repository {
	c := r
	c.origin = make(map[string]string, len(r.origin))
	for k, v := range r.origin {
		c.origin[k] = v
	}
	for _, l := range []*[]string{&c.Include, &c.Exclude, &c.IncludeDirs, &c.ExcludeDirs, &c.Extensions} {
		*l = append([]string(nil), (*l)...)
	}
	return c
}

// applyTable decodes the repository keys of table into r. prefix is
// "repository.NAME." ("" at the top level); origin labels the values.
func (d *decoder) applyTable(prefix string, table map[string]any, r *Repository, origin string) {
	if _, ok := table["refresh"]; ok {
		if _, both := table["max_poll"]; both {
			d.add(prefix+"refresh", "refresh is an alias of max_poll and both are set; keep only max_poll")
		} else {
			repoFields["max_poll"](d, prefix+"refresh", table["refresh"], r)
			r.origin["max_poll"] = origin
		}
	}
	for _, key := range sortedKeys(table) {
		f, ok := repoFields[key]
		if !ok {
			switch {
			case key == "refresh":
			case contains(globalKeys, key):
				d.add(prefix+key, "%s is a global key; move it to the top of the file, before the first table", key)
			default:
				d.add(prefix+key, "%s", unknownKeyMsg(key, repoKeys))
			}
			continue
		}
		f(d, prefix+key, table[key], r)
		r.origin[key] = origin
	}
	// A key file chosen in this table replaces an inherited one of the other kind.
	pf := table["passphrase_file"] != nil && table["passphrase_file"] != ""
	kf := table["key_file"] != nil && table["key_file"] != ""
	switch {
	case pf && kf:
		d.add(prefix+"key_file", "passphrase_file and key_file are both set; keep the one that holds the key")
	case pf:
		r.KeyFile = ""
	case kf:
		r.PassphraseFile = ""
	}
}

// repositories decodes the [repository.NAME] tables.
func (d *decoder) repositories(v any, defaults Repository) []Repository {
	const hint = "add a table [repository.NAME] with at least path and relay"
	tables, ok := v.(map[string]any)
	if v != nil && !ok {
		d.add("repository", "expected tables [repository.NAME], got %s; %s", describe(v), hint)
		return nil
	}
	if len(tables) == 0 {
		d.add("repository", "no repository is configured; %s", hint)
		return nil
	}
	var repos []Repository
	for _, name := range sortedKeys(tables) {
		prefix := "repository." + name + "."
		// Dots would make keys such as repository.a.b.path ambiguous.
		if err := checkName(name); err != nil || strings.Contains(name, ".") {
			d.add("repository."+name, `the repository name %q is not valid; use 1 to 64 letters, digits, "-" or "_"`, name)
			continue
		}
		table, ok := tables[name].(map[string]any)
		if !ok {
			d.add("repository."+name, "expected a table [repository.%s], got %s", name, describe(tables[name]))
			continue
		}
		r := defaults.clone()
		r.Name = name
		d.applyTable(prefix, table, &r, "")
		d.finishRepository(prefix, &r)
		repos = append(repos, r)
	}
	return repos
}

// finishRepository fills the host-dependent default and checks the
// relations between keys.
func (d *decoder) finishRepository(prefix string, r *Repository) {
	if r.Path == "" {
		d.add(prefix+"path", `missing; set the local folder to keep in sync, e.g. path = "~/Documents"`)
	}
	if r.Relay == "" {
		d.add(prefix+"relay", `missing; set the relay folder: an rclone remote "name:path", an inline remote ":sftp,host=example.org:escale" or a local folder`)
	}
	if r.Client == "" {
		r.origin["client"] = "default"
		host, err := d.opts.Hostname()
		switch {
		case err != nil:
			d.add(prefix+"client", "missing, and the host name is unknown (%v); set client to a name for this machine", err)
		default:
			if c := sanitizeName(host); c != "" {
				r.Client = c
			} else {
				d.add(prefix+"client", "missing, and the host name %q gives no usable name; set client to a name for this machine", host)
			}
		}
	}
	if r.MinPoll > r.MaxPoll {
		d.add(prefix+"min_poll", "%s is longer than max_poll (%s); min_poll is the interval while busy and must not exceed max_poll",
			FormatDuration(r.MinPoll), FormatDuration(r.MaxPoll))
	}
	if r.Encryption == EncryptionNone {
		if r.origin["passphrase_file"] == "" && r.PassphraseFile != "" || r.origin["key_file"] == "" && r.KeyFile != "" {
			d.add(prefix+"encryption", `is "none" but a key file is set in the same table; remove the key file, or use encryption = "age"`)
		}
		r.PassphraseFile, r.KeyFile = "", ""
	}
}

// sanitizeName turns a host name into a client name.
func sanitizeName(host string) string {
	b := []rune(strings.TrimSpace(host))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '-'
		}
	}
	s := strings.TrimLeft(string(b), ".")
	if len(s) > 64 {
		s = s[:64]
	}
	if checkName(s) != nil {
		return ""
	}
	return s
}

// crossCheck rejects repositories that would step on each other.
func (d *decoder) crossCheck(repos []Repository) {
	for i := range repos {
		a := &repos[i]
		for j := range repos {
			b := &repos[j]
			if i == j || a.Path == "" || b.Path == "" {
				continue
			}
			switch {
			case j > i && a.Path == b.Path:
				d.add("repository."+b.Name+".path", "%s is also the path of repository.%s; each repository needs its own folder", b.Path, a.Name)
			case within(b.Path, a.Path):
				d.add("repository."+b.Name+".path", "%s is inside repository.%s.path (%s); repositories must not nest", b.Path, a.Name, a.Path)
			}
			if j > i && a.Relay != "" && a.Relay == b.Relay {
				d.add("repository."+b.Name+".relay", "%s is also the relay of repository.%s; each repository needs its own relay folder", b.Relay, a.Name)
			}
		}
		for j := range repos {
			b := &repos[j]
			if b.Path != "" && isLocalRelay(a.Relay) && (a.Relay == b.Path || within(a.Relay, b.Path) || within(b.Path, a.Relay)) {
				d.add("repository."+a.Name+".relay", "%s overlaps repository.%s.path (%s); the relay must be outside every synced folder", a.Relay, b.Name, b.Path)
			}
		}
	}
}

// within reports whether p is strictly inside dir (both absolute, clean).
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

var remoteNameRE = regexp.MustCompile(`^[\w.@+ -]+$`)

// isLocalRelay says whether rclone would read s as a local path, following
// rclone's rule: "name:path" is a remote when name is a valid remote name,
// ":type...:path" an inline remote; anything else is local.
func isLocalRelay(s string) bool {
	if s == "" || strings.HasPrefix(s, ":") {
		return false
	}
	name, _, found := strings.Cut(s, ":")
	if !found {
		return true
	}
	if runtime.GOOS == "windows" && len(name) == 1 {
		return true // a drive letter
	}
	return !remoteNameRE.MatchString(name)
}

// relay reads and normalises a relay: local folders are made absolute.
func (d *decoder) relay(key string, v any) (string, bool) {
	s, ok := d.str(key, v, `a relay such as "remote:escale", ":sftp,host=example.org:escale" or a local folder`)
	if !ok {
		return "", false
	}
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		d.add(key, "is empty; set the relay folder")
		return "", false
	case strings.HasPrefix(s, ":"):
		if !strings.Contains(s[1:], ":") || len(s) < 3 {
			d.add(key, `%q is not an inline rclone remote; write ":type,option=value:path", e.g. ":sftp,host=example.org:escale"`, s)
			return "", false
		}
		return s, true
	case isLocalRelay(s):
		p, err := expandPath(s, d.opts.Home, d.dir)
		if err != nil {
			d.add(key, "%v", err)
			return "", false
		}
		return p, true
	}
	return s, true
}
