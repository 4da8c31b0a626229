package localfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestValidName(t *testing.T) {
	long := strings.Repeat("x", MaxSegment)
	tests := []struct {
		name        string
		linux, wins string // expected Reason substring; "" means accepted
		segment     string // expected offending segment, when refused on linux
	}{
		{"a.txt", "", "", ""},
		{"dir/sub/file.tar.gz", "", "", ""},
		{".bashrc", "", "", ""},
		{"..hidden", "", "", ""},
		{"a..b", "", "", ""},
		{"élève/日本.txt", "", "", ""},
		{long, "", "", ""},
		{"", "empty name", "empty name", ""},
		{"/etc/passwd", "absolute", "absolute", ""},
		{"//server/share/x", "absolute", "absolute", ""},
		{"C:/Windows/x", "", "drive letter", "C:"},
		{"c:evil", "", "drive letter", "c:"},
		{"..", `".."`, `".."`, ".."},
		{"../x", `".."`, `".."`, ".."},
		{"a/../../x", `".."`, `".."`, ".."},
		{"a/./b", `"."`, `"."`, "."},
		{"a//b", "empty segment", "empty segment", ""},
		{"a/", "empty segment", "empty segment", ""},
		{"a\x00b", "control", "control", "a\x00b"},
		{"a/b\nc", "control", "control", "b\nc"},
		{"tab\there", "control", "control", "tab\there"},
		{"del\x7f", "control", "control", "del\x7f"},
		{"c1\u0085x", "control", "control", "c1\u0085x"},
		{`a\b`, "backslash", "backslash", `a\b`},
		{`..\..\x`, "backslash", "backslash", `..\..\x`},
		{"d/" + long + "y", "longer than 255", "longer than 255", long + "y"},
		// Legal on Linux, refused for Windows.
		{"CON", "", "reserved", ""},
		{"dir/nul.txt", "", "reserved", ""},
		{"Com1.tar.gz", "", "reserved", ""},
		{"lpt9", "", "reserved", ""},
		{"COM\u00b9", "", "reserved", ""},
		{"aux .txt", "", "reserved", ""},
		{"CONOUT$", "", "reserved", ""},
		{"a/b:c", "", `character ':'`, ""},
		{"what?", "", `character '?'`, ""},
		{"x<y", "", `character '<'`, ""},
		{"x>y", "", `character '>'`, ""},
		{`say"hi"`, "", `character '"'`, ""},
		{"a|b", "", `character '|'`, ""},
		{"star*", "", `character '*'`, ""},
		{"trailing.", "", "ends with a dot", ""},
		{"dir /x", "", "ends with a dot or a space", ""},
		{"bad\xffutf8", "", "UTF-8", ""},
		// Near misses that are legal everywhere.
		{"CONSOLE", "", "", ""},
		{"COM10", "", "", ""},
		{"nulx.txt", "", "", ""},
		{"LPT", "", "", ""},
	}
	for _, tc := range tests {
		for _, g := range []struct{ goos, want string }{{"linux", tc.linux}, {"windows", tc.wins}} {
			err := ValidName(tc.name, g.goos)
			if g.want == "" {
				if err != nil {
					t.Errorf("ValidName(%q, %s) = %v, want nil", tc.name, g.goos, err)
				}
				continue
			}
			var ne *NameError
			if !errors.As(err, &ne) {
				t.Errorf("ValidName(%q, %s) = %v, want a *NameError about %q", tc.name, g.goos, err, g.want)
				continue
			}
			if !strings.Contains(ne.Reason, g.want) || ne.Name != tc.name {
				t.Errorf("ValidName(%q, %s): reason %q name %q, want reason containing %q", tc.name, g.goos, ne.Reason, ne.Name, g.want)
			}
			if g.goos == "linux" && tc.segment != "" && ne.Segment != tc.segment {
				t.Errorf("ValidName(%q, linux): segment %q, want %q", tc.name, ne.Segment, tc.segment)
			}
			if !strings.Contains(err.Error(), "rename it") {
				t.Errorf("error %q does not say what to do", err)
			}
		}
	}
}

func TestValidNameDarwinRequiresUTF8(t *testing.T) {
	if err := ValidName("bad\xff", "darwin"); err == nil {
		t.Fatal("darwin accepted invalid UTF-8")
	}
	if err := ValidName("bad\xff", "linux"); err != nil {
		t.Fatalf("linux refused a byte name: %v", err)
	}
}

// Names built mostly from dangerous pieces, so that the property is exercised where it matters.
var namePieces = []string{"a", "b.txt", ".", "..", "", "...", "/", "\\", "C:", "c:", ":", "\x00", "\n",
	"~", ".git", "CON", " ", "é", "..\\..", "/..", "../", "\\\\server", "x/..", "%2e%2e"}

func genName() *rapid.Generator[string] {
	pieces := rapid.Map(rapid.SliceOfN(rapid.SampledFrom(namePieces), 1, 8),
		func(s []string) string { return strings.Join(s, "") })
	segs := rapid.Map(rapid.SliceOfN(rapid.SampledFrom(namePieces), 1, 6),
		func(s []string) string { return strings.Join(s, "/") })
	return rapid.OneOf(pieces, segs, rapid.String(), rapid.StringMatching(`[a./\\:C]{0,12}`))
}

func TestValidNameNeverEscapesRoot(t *testing.T) {
	root := filepath.FromSlash("/srv/escale/root")
	rapid.Check(t, func(rt *rapid.T) {
		name := genName().Draw(rt, "name")
		linuxOK := ValidName(name, "linux") == nil
		windowsOK := ValidName(name, "windows") == nil
		if windowsOK && !linuxOK {
			rt.Fatalf("%q accepted for windows but not linux: windows must be stricter", name)
		}
		if !linuxOK {
			return
		}
		joined := filepath.Join(root, name)
		if !strings.HasPrefix(joined, root+string(filepath.Separator)) {
			rt.Fatalf("ValidName accepted %q but Join gives %q, outside %q", name, joined, root)
		}
		if rel, err := filepath.Rel(root, joined); err != nil || !filepath.IsLocal(rel) {
			rt.Fatalf("ValidName accepted %q: rel %q (%v) is not local", name, rel, err)
		}
		if windowsOK && strings.ContainsAny(name, `\:`) {
			rt.Fatalf("%q accepted for windows with a separator or colon", name)
		}
	})
}

// On a real folder with a symlink to the outside, a file symlink and a file: whatever name comes
// in, nothing is ever written outside the folder, and every write lands below the real root.
func TestWriteNeverEscapesOnDisk(t *testing.T) {
	base := t.TempDir()
	var writes, refusals int
	defer func() { t.Logf("%d writes, %d refusals", writes, refusals) }()
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp(base, "case")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		root, outside := filepath.Join(dir, "root"), filepath.Join(dir, "outside")
		os.Mkdir(root, 0o755)
		os.Mkdir(outside, 0o755)
		os.Symlink(outside, filepath.Join(root, "out"))
		os.Symlink("../outside", filepath.Join(root, "rel"))
		os.WriteFile(filepath.Join(root, "f"), []byte("f"), 0o644)
		os.Symlink("f", filepath.Join(root, "fl"))
		f, err := OpenFolder(root, Options{TrashDir: filepath.Join(dir, "trash"), Durability: Batch})
		if err != nil {
			rt.Fatal(err)
		}
		defer f.Close()
		pieces := []string{"out", "rel", "f", "fl", "a", "..", ".", "", "/", "x.txt"}
		segs := rapid.SliceOfN(rapid.SampledFrom(pieces), 1, 5).Draw(rt, "segments")
		name := strings.Join(segs, "/")
		err = f.WriteAtomic(name, strings.NewReader("payload"), FileMeta{}, nil)
		if err != nil {
			refusals++
		} else {
			writes++
			real, err := filepath.EvalSymlinks(filepath.Join(root, filepath.FromSlash(name)))
			if err != nil || !strings.HasPrefix(real, root+string(filepath.Separator)) {
				rt.Fatalf("WriteAtomic(%q) wrote to %q (%v), outside %s", name, real, err, root)
			}
		}
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			rt.Fatalf("WriteAtomic(%q) wrote outside the folder: %v", name, ents)
		}
	})
}
