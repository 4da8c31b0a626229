package filter

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// ignoreFile is one parsed .escaleignore.
type ignoreFile struct {
	dir      string // "" for the root
	depth    int
	patterns []ignorePattern
}

type ignorePattern struct {
	glob    string // doublestar pattern relative to the ignore file's directory
	negate  bool
	dirOnly bool
}

// WithIgnoreFile returns a copy of f that also applies the .escaleignore
// content found in directory dir ("" for the root). A pattern that cannot be
// compiled is an error naming the file and line; the caller should then not
// guess what was meant to be ignored.
func (f *Filter) WithIgnoreFile(dir string, content []byte) (*Filter, error) {
	dir = strings.Trim(dir, "/")
	ig, err := parseIgnore(dir, content)
	if err != nil {
		return nil, err
	}
	g := &Filter{}
	if f != nil {
		*g = *f
	}
	// Keep the list ordered by depth, so deeper files take precedence
	// whatever order they were added in.
	g.ignores = make([]*ignoreFile, 0, len(g.ignores)+1)
	inserted := false
	if f != nil {
		for _, x := range f.ignores {
			if !inserted && x.depth > ig.depth {
				g.ignores = append(g.ignores, ig)
				inserted = true
			}
			g.ignores = append(g.ignores, x)
		}
	}
	if !inserted {
		g.ignores = append(g.ignores, ig)
	}
	return g, nil
}

func parseIgnore(dir string, content []byte) (*ignoreFile, error) {
	ig := &ignoreFile{dir: dir}
	if dir != "" {
		ig.depth = strings.Count(dir, "/") + 1
	}
	content = bytes.TrimPrefix(content, []byte("\xef\xbb\xbf"))
	for n, raw := range strings.Split(string(content), "\n") {
		p, ok, err := parseIgnoreLine(raw)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %q: %w; fix or remove the line",
				joinRel(dir, IgnoreFileName), n+1, strings.TrimRight(raw, "\r"), err)
		}
		if ok {
			ig.patterns = append(ig.patterns, p)
		}
	}
	return ig, nil
}

// parseIgnoreLine turns one gitignore line into a doublestar pattern.
func parseIgnoreLine(line string) (p ignorePattern, ok bool, err error) {
	line = strings.TrimSuffix(line, "\r")
	for strings.HasSuffix(line, " ") && !strings.HasSuffix(line, `\ `) {
		line = line[:len(line)-1]
	}
	if line == "" || line[0] == '#' {
		return p, false, nil
	}
	if line[0] == '!' {
		p.negate = true
		line = line[1:]
	}
	if strings.HasSuffix(line, "/") {
		p.dirOnly = true
		line = strings.TrimRight(line, "/")
	}
	if line == "" {
		return p, false, nil
	}
	anchored := strings.Contains(line, "/")
	line = escapeBraces(strings.TrimPrefix(line, "/"))
	// "x/**" matches what is inside x, not x itself (doublestar's "x/**" would).
	if line == "**" {
		anchored = true
	} else if strings.HasSuffix(line, "/**") {
		line = line[:len(line)-len("**")] + "*/**"
	}
	if !anchored {
		line = "**/" + line
	}
	if !doublestar.ValidatePattern(line) {
		return p, false, fmt.Errorf("bad pattern (an unclosed '['?)")
	}
	p.glob = line
	return p, true, nil
}

// escapeBraces makes '{' and '}' literal: gitignore has no alternatives.
func escapeBraces(s string) string {
	if !strings.ContainsAny(s, "{}") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			b.WriteByte(c)
			b.WriteByte(s[i+1])
			i++
			continue
		}
		if c == '{' || c == '}' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// ignored applies the ignore files above rel, deepest first; within a file
// the last matching line decides.
func (f *Filter) ignored(rel string, isDir bool) bool {
	for i := len(f.ignores) - 1; i >= 0; i-- {
		ig := f.ignores[i]
		sub := rel
		if ig.dir != "" {
			if len(rel) <= len(ig.dir) || rel[len(ig.dir)] != '/' || rel[:len(ig.dir)] != ig.dir {
				continue
			}
			sub = rel[len(ig.dir)+1:]
		}
		for j := len(ig.patterns) - 1; j >= 0; j-- {
			p := &ig.patterns[j]
			if p.dirOnly && !isDir {
				continue
			}
			if ok, _ := doublestar.Match(p.glob, sub); ok {
				return !p.negate
			}
		}
	}
	return false
}

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
