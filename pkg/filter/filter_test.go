package filter

import (
	"strings"
	"testing"
)

type want struct {
	path  string
	isDir bool
	match bool
}

func check(t *testing.T, f *Filter, cases []want) {
	t.Helper()
	for _, c := range cases {
		if got := f.Match(c.path, c.isDir); got != c.match {
			t.Errorf("Match(%q, dir=%v) = %v, want %v", c.path, c.isDir, got, c.match)
		}
	}
}

func mustNew(t *testing.T, r Rules) *Filter {
	t.Helper()
	f, err := New(r)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRules(t *testing.T) {
	tests := []struct {
		name  string
		rules Rules
		cases []want
	}{
		{"no rules syncs everything, dot files too", Rules{}, []want{
			{"a.txt", false, true}, {".hidden", false, true}, {"d/.git", true, true},
			{"d/.config/x", false, true}, {"a.sync-conflict-20240101-120000-bob.txt", false, true},
		}},
		{"own temp files never sync", Rules{}, []want{
			{".escale-tmp-123", false, false}, {"d/.escale-tmp-x", false, false},
			{".escale-tmp-dir", true, false}, {".escale-tmp-dir/f", false, false},
			{"escale-tmp-123", false, true},
		}},
		{"include glob matches the whole base name (original matched a.txt.bak)", Rules{Include: []string{"*.txt"}}, []want{
			{"a.txt", false, true}, {"deep/er/b.txt", false, true},
			{"a.txt.bak", false, false}, {"a.TXT", false, false}, {"txt", false, false},
			{"dir.txt", true, true}, // include does not apply to directories
			{"other", true, true},
		}},
		{"exclude glob", Rules{Exclude: []string{"*.tmp", "~*"}}, []want{
			{"a.tmp", false, false}, {"d/~lock", false, false},
			{"a.tmp.keep", false, true}, {"a.tmp", true, true},
		}},
		{"glob with slash matches the relative path", Rules{Exclude: []string{"build/*.o", "**/cache/**", "/root.txt"}}, []want{
			{"build/a.o", false, false}, {"x/build/a.o", false, true},
			{"x/cache/y/z", false, false}, {"cache/z", false, false},
			{"root.txt", false, false}, {"sub/root.txt", false, true},
		}},
		{"regex, matched anywhere unless anchored", Rules{Include: []string{`/^x.*$/`, `/\.md/`}}, []want{
			{"xray", false, true}, {"d/xray", false, true}, {"ax", false, false},
			{"README.md", false, true}, {"README.mdx", false, true},
		}},
		{"regex with slash matches the path", Rules{Exclude: []string{`/^tmp\/.*\.log$/`}}, []want{
			{"tmp/a.log", false, false}, {"a/tmp/a.log", false, true}, {"a.log", false, true},
		}},
		{"extensions, any case, with or without the dot, multi-part", Rules{Extensions: []string{"jpg", ".PNG", "tar.gz"}}, []want{
			{"a.jpg", false, true}, {"A.JPG", false, true}, {"b.png", false, true},
			{"c.tar.gz", false, true}, {"c.gz", false, false}, {"jpg", false, false},
			{"a.jpg.bak", false, false}, {"photos", true, true},
		}},
		{"exclude_dirs prunes at any depth", Rules{ExcludeDirs: []string{"node_modules", ".git"}}, []want{
			{"node_modules", true, false}, {"node_modules/x.js", false, false},
			{"a/b/node_modules/c/x.js", false, false}, {"a/.git/config", false, false},
			{"node_modules", false, true}, // a file of that name is not a directory
		}},
		{"include_dirs works at any depth, not only top dirs (original bug)", Rules{IncludeDirs: []string{"build"}}, []want{
			{"build", true, true}, {"build/a", false, true}, {"build/sub/deep/a", false, true},
			{"x/y/build/a", false, true}, {"x/y/build/sub", true, true},
			{"x", true, false}, {"x/a", false, false}, {"root.txt", false, false},
			{"x/builder/a", false, false},
		}},
		{"include_dirs with a path glob", Rules{IncludeDirs: []string{"docs/*"}}, []want{
			{"docs/a/f", false, true}, {"docs/f", false, false}, {"x/docs/a/f", false, false},
		}},
		{"everything combined", Rules{
			Include: []string{"*.go", "Makefile"}, Exclude: []string{"*_test.go"},
			IncludeDirs: []string{"src"}, ExcludeDirs: []string{"vendor"}, Extensions: []string{"go"},
		}, []want{
			{"src/a.go", false, true}, {"src/a_test.go", false, false},
			{"src/Makefile", false, false}, // fails extensions
			{"src/vendor/b.go", false, false}, {"a.go", false, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { check(t, mustNew(t, tt.rules), tt.cases) })
	}
}

func TestNilFilter(t *testing.T) {
	var f *Filter
	check(t, f, []want{{"a", false, true}, {"d/.escale-tmp-1", false, false}, {"d", true, true}})
}

func TestBadPatterns(t *testing.T) {
	for _, r := range []Rules{
		{Include: []string{"/a(b/"}},
		{Exclude: []string{"[abc"}},
		{ExcludeDirs: []string{""}},
		{Extensions: []string{"."}},
		{IncludeDirs: []string{"/[z-a/"}},
	} {
		_, err := New(r)
		if err == nil {
			t.Errorf("New(%+v) accepted", r)
			continue
		}
		// The error names the offending entry.
		var entry string
		for _, l := range [][]string{r.Include, r.Exclude, r.IncludeDirs, r.ExcludeDirs, r.Extensions} {
			if len(l) > 0 {
				entry = l[0]
			}
		}
		if !strings.Contains(err.Error(), `"`+entry+`"`) {
			t.Errorf("error %q does not name %q", err, entry)
		}
	}
}

func withIgnore(t *testing.T, f *Filter, dir, content string) *Filter {
	t.Helper()
	g, err := f.WithIgnoreFile(dir, []byte(content))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestIgnoreFiles(t *testing.T) {
	root := withIgnore(t, nil, "", `# comment
*.log
!keep.log
/only-root.txt
build/
docs/**
\#literal
trailing-spaces   
a/**/z
{braces}
`)
	check(t, root, []want{
		{"x.log", false, false}, {"d/e/x.log", false, false}, {"keep.log", false, true}, {"d/keep.log", false, true},
		{"only-root.txt", false, false}, {"d/only-root.txt", false, true},
		{"build", true, false}, {"d/build/f", false, false}, {"build", false, true}, // dir-only pattern
		{"docs", true, true}, {"docs/a", false, false}, {"docs/sub", true, false},
		{"#literal", false, false}, {"trailing-spaces", false, false},
		{"a/z", false, false}, {"a/b/c/z", false, false}, {"b/a/z", false, true},
		{"{braces}", false, false}, {"braces", false, true},
		{"# comment", false, true},
	})

	// A deeper file overrides a shallower one, and applies only below its dir.
	nested := withIgnore(t, root, "sub", "!*.log\nsecret\n")
	check(t, nested, []want{
		{"sub/x.log", false, true}, {"sub/deep/x.log", false, true}, {"x.log", false, false},
		{"other/x.log", false, false}, {"sub/secret", false, false}, {"sub/a/secret", true, false},
		{"secret", false, true}, {"subx/secret", false, true},
	})

	// Nothing inside an ignored directory can be re-included, as in git.
	g := withIgnore(t, nil, "", "out/\n!out/keep\n")
	check(t, g, []want{{"out/keep", false, false}})

	// Order of WithIgnoreFile calls does not change precedence.
	a := withIgnore(t, withIgnore(t, nil, "d/e", "!x\n"), "", "x\n")
	b := withIgnore(t, withIgnore(t, nil, "", "x\n"), "d/e", "!x\n")
	for _, f := range []*Filter{a, b} {
		check(t, f, []want{{"d/e/x", false, true}, {"d/x", false, false}})
	}
	// The receiver is not modified.
	check(t, root, []want{{"sub/x.log", false, false}})
}

func TestIgnoreBadLine(t *testing.T) {
	_, err := (*Filter)(nil).WithIgnoreFile("a/b", []byte("ok\n[broken\n"))
	if err == nil || !strings.Contains(err.Error(), "a/b/.escaleignore line 2") {
		t.Fatalf("error = %v, want one naming a/b/.escaleignore line 2", err)
	}
}

func TestDirAndFileSteps(t *testing.T) {
	f := mustNew(t, Rules{IncludeDirs: []string{"keep"}, ExcludeDirs: []string{"skip"}})
	if f.RootIncluded() {
		t.Error("root files included despite include_dirs")
	}
	if d, inc := f.Dir("x", false); !d || inc {
		t.Errorf("Dir(x) = %v,%v; want descend, not included", d, inc)
	}
	if d, inc := f.Dir("x/keep", false); !d || !inc {
		t.Errorf("Dir(x/keep) = %v,%v; want descend, included", d, inc)
	}
	if d, _ := f.Dir("x/keep/skip", true); d {
		t.Error("excluded dir descended")
	}
	if f.File("x/a", false) || !f.File("x/keep/a", true) {
		t.Error("File ignores the directory's inclusion")
	}
}
