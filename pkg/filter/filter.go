// Package filter decides which local names a repository syncs.
//
// # Rules
//
// A repository's configuration has five lists (keys include, exclude,
// include_dirs, exclude_dirs, extensions). Each entry is a glob or a
// regular expression written /like this/.
//
//   - A glob uses path.Match syntax ('*', '?', '[…]', '\' escapes) plus '**'
//     for any number of directories, and must match the whole name: "*.txt"
//     matches "a.txt" but not "a.txt.bak". A glob without '/' is matched
//     against the base name at any depth; a glob with '/' is matched against
//     the slash-separated path relative to the repository root ("src/*.go",
//     "**/build"); a leading '/' only anchors ("/notes.txt" is the root's).
//   - A /regex/ is a Go regular expression (RE2). It matches anywhere in the
//     text unless anchored with ^ and $. It is matched against the base name,
//     or against the relative path if the expression contains '/'.
//   - An extensions entry "txt" (or ".txt", or "tar.gz") matches names ending
//     in ".txt", ignoring case; it may be a glob ("jp*g") or a /regex/ on the
//     base name.
//
// A regular file or symlink is synced when all of these hold:
//
//   - it matches an include entry, or include is empty;
//   - it matches an extensions entry, or extensions is empty;
//   - it matches no exclude entry;
//   - no directory above it matches exclude_dirs;
//   - some directory above it matches include_dirs, or include_dirs is empty
//     (so include_dirs = ["build"] syncs every "build" folder at any depth,
//     and nothing outside one, root files included);
//   - no .escaleignore file ignores it or a directory above it.
//
// include, exclude and extensions apply to files and symlinks only;
// include_dirs and exclude_dirs to directories only. A directory is synced
// (as a directory, so that empty ones travel too) when it is not excluded and
// it or a directory above it matches include_dirs (or include_dirs is empty).
//
// # .escaleignore
//
// A file named .escaleignore in any directory holds gitignore-syntax patterns
// for that directory and everything below it: '#' comments, '!' to re-include,
// a trailing '/' for directories only, a '/' at the start or in the middle to
// anchor the pattern to that directory, '**' for any depth, '\' escapes. A
// deeper file overrides a shallower one, a later line an earlier one; as in
// git, nothing inside an ignored directory can be re-included. The
// .escaleignore files themselves are synced, so every client applies the same
// rules.
//
// # Always
//
// escale's own temporary files (names starting with ".escale-tmp-") are never
// synced. Conflict copies are ordinary files and sync like any other. Hidden
// (dot) files sync like any other file; exclude them with exclude = [".*"].
//
// # Fixed from the original escale
//
// Globs there were turned into prefix-anchored regexes, so "*.txt" matched
// "a.txt.bak"; directory includes only worked for top-level directories; root
// files were treated differently on upload and download; dot files were never
// synced. Here globs match whole names, directory rules apply at any depth,
// one Match serves both directions, and dot files sync.
package filter

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// IgnoreFileName is the per-directory ignore file, in gitignore syntax.
const IgnoreFileName = ".escaleignore"

// tempPrefix marks escale's own temporary files.
// TODO(lead): switch to localfs.IsTemp once pkg/localfs lands.
const tempPrefix = ".escale-tmp-"

func isTemp(name string) bool { return strings.HasPrefix(name, tempPrefix) }

// Rules are the filter lists of one repository's configuration.
type Rules struct {
	Include, Exclude, IncludeDirs, ExcludeDirs, Extensions []string
}

// Filter decides which relative paths are synced. It is immutable and safe
// for concurrent use. A nil *Filter has no rules (only the built-in ones).
type Filter struct {
	include, exclude, includeDirs, excludeDirs, extensions []matcher
	ignores                                                []*ignoreFile // shallowest first
}

// New compiles rules. An invalid glob or regular expression is an error that
// names the key and the entry.
func New(r Rules) (*Filter, error) {
	f := &Filter{}
	var err error
	lists := []struct {
		key  string
		src  []string
		dst  *[]matcher
		comp func(string) (matcher, error)
	}{
		{"include", r.Include, &f.include, compileName},
		{"exclude", r.Exclude, &f.exclude, compileName},
		{"include_dirs", r.IncludeDirs, &f.includeDirs, compileName},
		{"exclude_dirs", r.ExcludeDirs, &f.excludeDirs, compileName},
		{"extensions", r.Extensions, &f.extensions, compileExtension},
	}
	for _, l := range lists {
		for _, s := range l.src {
			var m matcher
			if m, err = l.comp(s); err != nil {
				return nil, fmt.Errorf("filter %s: entry %q: %w", l.key, s, err)
			}
			*l.dst = append(*l.dst, m)
		}
	}
	return f, nil
}

// matcher is one compiled entry.
type matcher struct {
	glob   string         // doublestar pattern, when re is nil
	re     *regexp.Regexp // for /regex/ entries
	onPath bool           // match the relative path rather than the base name
	lower  bool           // match the lower-cased name (extensions)
}

func (m *matcher) match(rel, base string) bool {
	s := base
	if m.onPath {
		s = rel
	}
	if m.lower {
		s = strings.ToLower(s)
	}
	if m.re != nil {
		return m.re.MatchString(s)
	}
	ok, _ := doublestar.Match(m.glob, s) // validated in compile
	return ok
}

func isRegex(s string) bool { return len(s) >= 2 && s[0] == '/' && s[len(s)-1] == '/' }

func compileRegex(s string) (matcher, error) {
	src := s[1 : len(s)-1]
	re, err := regexp.Compile(src)
	if err != nil {
		return matcher{}, fmt.Errorf("bad regular expression: %w", err)
	}
	return matcher{re: re, onPath: strings.Contains(src, "/")}, nil
}

func compileGlob(g string) (matcher, error) {
	if g == "" {
		return matcher{}, fmt.Errorf("empty pattern")
	}
	if !doublestar.ValidatePattern(g) {
		return matcher{}, fmt.Errorf("bad glob (an unclosed '[' or '{', or a trailing '\\'?)")
	}
	return matcher{glob: g}, nil
}

func compileName(s string) (matcher, error) {
	if isRegex(s) {
		return compileRegex(s)
	}
	onPath := strings.Contains(s, "/")
	m, err := compileGlob(strings.TrimPrefix(s, "/"))
	m.onPath = onPath
	return m, err
}

func compileExtension(s string) (matcher, error) {
	if isRegex(s) {
		return compileRegex(s)
	}
	ext := strings.ToLower(strings.TrimPrefix(s, "."))
	if ext == "" || strings.Contains(ext, "/") {
		return matcher{}, fmt.Errorf("not an extension (write \"txt\" or \".txt\")")
	}
	m, err := compileGlob("*." + ext)
	m.lower = true
	return m, err
}

func anyMatch(ms []matcher, rel, base string) bool {
	for i := range ms {
		if ms[i].match(rel, base) {
			return true
		}
	}
	return false
}

func baseName(rel string) string {
	return rel[strings.LastIndexByte(rel, '/')+1:]
}

// Dir decides about directory rel, given whether its parent directory was
// included (for a top-level directory, pass RootIncluded). descend says
// whether anything below rel can be synced, so whether to walk into it;
// included whether rel itself is synced, and what to pass for its children.
func (f *Filter) Dir(rel string, parentIncluded bool) (descend, included bool) {
	base := baseName(rel)
	if isTemp(base) {
		return false, false
	}
	if f == nil {
		return true, true
	}
	if anyMatch(f.excludeDirs, rel, base) || f.ignored(rel, true) {
		return false, false
	}
	return true, parentIncluded || anyMatch(f.includeDirs, rel, base)
}

// RootIncluded reports whether files at the repository root can be synced,
// the "parent included" value for top-level entries.
func (f *Filter) RootIncluded() bool { return f == nil || len(f.includeDirs) == 0 }

// File decides about regular file or symlink rel in a directory that was
// descended into, given whether that directory is included (see Dir).
func (f *Filter) File(rel string, dirIncluded bool) bool {
	base := baseName(rel)
	if isTemp(base) {
		return false
	}
	if f == nil {
		return true
	}
	if !dirIncluded ||
		(len(f.include) > 0 && !anyMatch(f.include, rel, base)) ||
		(len(f.extensions) > 0 && !anyMatch(f.extensions, rel, base)) ||
		anyMatch(f.exclude, rel, base) {
		return false
	}
	return !f.ignored(rel, false)
}

// Match reports whether rel (slash-separated, relative to the repository
// root) is synced, checking every directory above it. isDir says whether rel
// is a directory. Ignore files count only if they were added with
// WithIgnoreFile.
func (f *Filter) Match(rel string, isDir bool) bool {
	if rel == "" || rel == "." {
		return true
	}
	included := f.RootIncluded()
	for i := 0; i < len(rel); i++ {
		if rel[i] != '/' {
			continue
		}
		descend, inc := f.Dir(rel[:i], included)
		if !descend {
			return false
		}
		included = inc
	}
	if isDir {
		descend, inc := f.Dir(rel, included)
		return descend && inc
	}
	return f.File(rel, included)
}
