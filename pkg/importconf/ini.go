package importconf

import (
	"fmt"
	"strings"
)

// iniFile is an INI file read with Python configparser's rules, as the
// original escale read its configuration.
type iniFile struct {
	name     string
	defaults *section
	sections []*section
}

// section is one [name] block; options keep their file order.
type section struct {
	name    string
	line    int
	options []*option
	byKey   map[string]*option
}

// option is one "key = value" (or "key: value"), continuation lines
// joined with "\n". raw is the value before interpolation.
type option struct {
	key, raw, value string
	line            int
}

// LineError is a problem at a line of the old file.
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

func (s *section) get(key string) *option { return s.byKey[key] }

func (s *section) add(o *option) error {
	if prev, ok := s.byKey[o.key]; ok {
		return fmt.Errorf("option %q is set twice in [%s] (first at line %d); keep one", o.key, s.name, prev.line)
	}
	s.byKey[o.key] = o
	s.options = append(s.options, o)
	return nil
}

func newSection(name string, line int) *section {
	return &section{name: name, line: line, byKey: map[string]*option{}}
}

// parseINI reads data. Lines before the first section header belong to
// DEFAULT, as the original escale inserted that header itself. Keys are
// lower-cased (configparser's optionxform); "#" and ";" start full-line
// comments; an indented line continues the previous value; values are
// interpolated with "%(name)s" from their section, then DEFAULT, and
// "%%" stands for "%".
func parseINI(name string, data []byte) (*iniFile, error) {
	f := &iniFile{name: name, defaults: newSection("DEFAULT", 0)}
	cur := f.defaults
	var last *option
	blank := 0 // blank lines seen inside a possible multi-line value
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	text = strings.TrimPrefix(text, "\ufeff")
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		trimmed := strings.TrimSpace(line)
		if trimmed == "" {
			blank++
			continue
		}
		if trimmed[0] == '#' || trimmed[0] == ';' {
			continue
		}
		indented := line[0] == ' ' || line[0] == '\t'
		if indented && last != nil {
			last.raw += strings.Repeat("\n", blank) + "\n" + trimmed
			blank = 0
			continue
		}
		blank = 0
		if trimmed[0] == '[' {
			end := strings.IndexByte(trimmed, ']')
			if end < 0 {
				return nil, &LineError{name, n, fmt.Sprintf("%q: a section header needs a closing ']'", trimmed)}
			}
			sname := strings.TrimSpace(trimmed[1:end])
			if sname == "" {
				return nil, &LineError{name, n, "empty section name; write [name]"}
			}
			last = nil
			if sname == "DEFAULT" {
				cur = f.defaults
				continue
			}
			for _, s := range f.sections {
				if s.name == sname {
					return nil, &LineError{name, n, fmt.Sprintf("section [%s] appears twice (first at line %d); merge them", sname, s.line)}
				}
			}
			cur = newSection(sname, n)
			f.sections = append(f.sections, cur)
			continue
		}
		cut := strings.IndexAny(trimmed, "=:")
		if cut <= 0 {
			return nil, &LineError{name, n, fmt.Sprintf("%q is not an option: write \"name = value\"", trimmed)}
		}
		o := &option{key: strings.ToLower(strings.TrimSpace(trimmed[:cut])), raw: strings.TrimSpace(trimmed[cut+1:]), line: n}
		if err := cur.add(o); err != nil {
			return nil, &LineError{name, n, err.Error()}
		}
		last = o
	}
	for _, s := range append([]*section{f.defaults}, f.sections...) {
		for _, o := range s.options {
			v, err := f.interpolate(s, o.raw, 0)
			if err != nil {
				return nil, &LineError{name, o.line, fmt.Sprintf("%s: %v", o.key, err)}
			}
			o.value = v
		}
	}
	return f, nil
}

// interpolate expands %(name)s and %% as configparser's BasicInterpolation.
func (f *iniFile) interpolate(s *section, v string, depth int) (string, error) {
	if depth > 10 {
		return "", fmt.Errorf("%%(…)s references nest too deep (a loop?)")
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(v, '%')
		if i < 0 {
			b.WriteString(v)
			return b.String(), nil
		}
		b.WriteString(v[:i])
		rest := v[i+1:]
		switch {
		case strings.HasPrefix(rest, "%"):
			b.WriteByte('%')
			v = rest[1:]
		case strings.HasPrefix(rest, "("):
			end := strings.Index(rest, ")s")
			if end < 0 {
				return "", fmt.Errorf("%q: a reference is written %%(name)s", "%"+rest)
			}
			ref := strings.ToLower(rest[1:end])
			o := s.get(ref)
			if o == nil {
				o = f.defaults.get(ref)
			}
			if o == nil {
				return "", fmt.Errorf("%%(%s)s refers to no option of [%s] or DEFAULT", ref, s.name)
			}
			sub, err := f.interpolate(s, o.raw, depth+1)
			if err != nil {
				return "", err
			}
			b.WriteString(sub)
			v = rest[end+2:]
		default:
			return "", fmt.Errorf("a lone %%: write %%%% for a percent sign, or %%(name)s for another option's value")
		}
	}
}

// effective is the option of s for key, or DEFAULT's; inherited tells which.
func (f *iniFile) effective(s *section, key string) (o *option, inherited bool) {
	if o := s.get(key); o != nil {
		return o, false
	}
	if o := f.defaults.get(key); o != nil {
		return o, true
	}
	return nil, false
}
