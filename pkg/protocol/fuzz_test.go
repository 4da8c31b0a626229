package protocol

// Fuzz targets for what the protocol decodes from a hostile relay. Run one
// with, for example,
//
//	go test ./pkg/protocol -run '^$' -fuzz FuzzManifestDecode -fuzztime 20s
//
// The committed seed corpus under testdata/fuzz runs with every `go test`;
// regenerate it with
//
//	go test ./pkg/protocol -run TestFuzzSeedCorpus -update-corpus

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/escale-sync/escale/pkg/localfs"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpus under testdata/fuzz")

// goosList are the name rules a relay's paths must be safe under.
var goosList = []string{"linux", "windows", "darwin"}

// windowsReserved is an independent list of the device names Windows
// reserves, with or without an extension.
var windowsReserved = func() map[string]bool {
	m := map[string]bool{"CON": true, "PRN": true, "AUX": true, "NUL": true, "CONIN$": true, "CONOUT$": true}
	for _, d := range []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "¹", "²", "³"} {
		m["COM"+d], m["LPT"+d] = true, true
	}
	return m
}()

// unsafePath is the fuzz targets' oracle, written apart from
// localfs.ValidName: why p, accepted as a name on goos, could still escape
// the folder or not be a plain file name there. "" means safe.
func unsafePath(p, goos string) string {
	switch {
	case p == "":
		return "empty"
	case strings.HasPrefix(p, "/"):
		return "absolute"
	case goos == "windows" && len(p) >= 2 && p[1] == ':' && ('a' <= p[0]|0x20 && p[0]|0x20 <= 'z'):
		return "drive letter"
	case strings.ContainsRune(p, '\\'):
		return "backslash"
	case path.Clean(p) != p:
		return "not clean"
	case !filepath.IsLocal(p):
		return "not local"
	case !strings.HasPrefix(filepath.Join("/root", p), "/root/"):
		return "joins outside the root"
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f {
			return "control byte"
		}
	}
	for _, seg := range strings.Split(p, "/") {
		switch {
		case seg == "" || seg == "." || seg == "..":
			return "bad segment"
		case len(seg) > 255:
			return "segment too long"
		}
		if goos != "windows" {
			continue
		}
		if !utf8.ValidString(seg) {
			return "not UTF-8 on windows"
		}
		if strings.ContainsAny(seg, `<>:"|?*`) {
			return "character reserved on windows"
		}
		if strings.HasSuffix(seg, ".") || strings.HasSuffix(seg, " ") {
			return "trailing dot or space on windows"
		}
		base, _, _ := strings.Cut(seg, ".")
		if windowsReserved[strings.ToUpper(strings.TrimRight(base, " "))] {
			return "reserved device name on windows"
		}
	}
	if goos == "darwin" && !utf8.ValidString(p) {
		return "not UTF-8 on darwin"
	}
	return ""
}

// checkNames applies the oracle to every name a change makes the puller touch.
func checkNames(t *testing.T, what string, c *Change, goos string) {
	t.Helper()
	names := []string{c.Path}
	if c.From != "" {
		names = append(names, c.From)
	}
	// Validation holds names to the rules of every OS (localfs.Portable);
	// what only the reader's OS rejects, the engine skips file by file.
	_ = goos
	for _, p := range names {
		if why := unsafePath(p, localfs.Portable); why != "" {
			t.Fatalf("%s valid on %s, yet its path %q is unsafe: %s", what, goos, p, why)
		}
		if err := localfs.ValidName(p, localfs.Portable); err != nil {
			t.Fatalf("%s valid on %s, yet localfs.ValidName refuses %q: %v", what, goos, p, err)
		}
	}
}

// FuzzManifestDecode: any bytes a relay (or a client holding the key) can
// put in a manifest's plaintext. Decoding and validating never panics; a
// manifest that validates has only names that are safe on every OS's core rules; the
// Windows rules are at least as strict as the Linux ones.
func FuzzManifestDecode(f *testing.F) {
	for _, s := range manifestSeeds() {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Manifest
		if json.Unmarshal(data, &m) != nil {
			return
		}
		valid := map[string]bool{}
		for _, goos := range goosList {
			err := m.Validate(m.Seq, goos)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Validate(%s) gave an error that is not ErrInvalid: %v", goos, err)
				}
				continue
			}
			valid[goos] = true
			if m.Validate(m.Seq+1, goos) == nil {
				t.Fatalf("a manifest of seq %d validates as seq %d", m.Seq, m.Seq+1)
			}
			seen := map[string]bool{}
			for i := range m.Changes {
				c := &m.Changes[i]
				checkNames(t, "manifest", c, goos)
				if seen[c.Path] {
					t.Fatalf("manifest valid on %s with %q twice", goos, c.Path)
				}
				seen[c.Path] = true
				for _, r := range c.Data {
					if !ValidObjectID(r.Obj) {
						t.Fatalf("manifest valid on %s refers to object %q", goos, r.Obj)
					}
				}
			}
		}
		if valid["windows"] && !valid["linux"] {
			t.Fatal("a manifest valid on windows is refused on linux: the windows rules must include the linux ones")
		}
	})
}

// FuzzIndexPageDecode: an index page, read when catching up (PROTOCOL.md §9).
func FuzzIndexPageDecode(f *testing.F) {
	for _, s := range pageSeeds() {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p IndexPage
		if json.Unmarshal(data, &p) != nil {
			return
		}
		for _, goos := range goosList {
			err := p.Validate(goos)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Validate(%s) gave an error that is not ErrInvalid: %v", goos, err)
				}
				continue
			}
			for i := range p.Entries {
				c := &p.Entries[i]
				if len(c.Data) > 0 || c.From != "" {
					t.Fatalf("index page valid on %s with an entry that carries data: %+v", goos, c)
				}
				checkNames(t, "index page", c, goos)
			}
		}
	})
}

// FuzzParseHead: any name in heads/. Parsing never panics; a parsed head has
// a valid client id, is of exactly one kind, and names itself.
func FuzzParseHead(f *testing.F) {
	for _, s := range headSeeds() {
		f.Add(s.base, s.seq, s.kind)
	}
	f.Fuzz(func(t *testing.T, base string, seq uint64, kind uint8) {
		if h, ok := ParseHead(base); ok {
			if !ValidCID(h.CID) {
				t.Fatalf("ParseHead(%q) gave client id %q", base, h.CID)
			}
			if h.Ack && h.Want {
				t.Fatalf("ParseHead(%q) is both an ack and a want head", base)
			}
			// Case-insensitive: uppercase hex is accepted (TestParseHeadCanonical).
			if !strings.EqualFold(h.Name(), HeadsDir+"/"+base) {
				t.Fatalf("ParseHead(%q) = %+v, whose name is %q", base, h, h.Name())
			}
			if again, ok := ParseHead(path.Base(h.Name())); !ok || again != h {
				t.Fatalf("ParseHead(%q) = %+v does not survive its own name: %+v, %v", base, h, again, ok)
			}
		}
		// Every head a client writes parses back. Sequence numbers from
		// 0xa000000000000000 up read as ack heads; no client gets there.
		if seq >= 0xa000000000000000 {
			seq >>= 4
		}
		h := Head{CID: "abcdefghijklmnopqrstuvwxyz", Seq: seq, Ack: kind%3 == 1, Want: kind%3 == 2}
		if got, ok := ParseHead(path.Base(h.Name())); !ok || got != h {
			t.Fatalf("head %+v written as %q parses as %+v, %v", h, h.Name(), got, ok)
		}
	})
}

// FuzzParseMarker: escale.json is plaintext; any bytes can be there.
func FuzzParseMarker(f *testing.F) {
	for _, s := range markerSeeds() {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMarker(data)
		if err != nil {
			if m != nil {
				t.Fatal("ParseMarker returned a marker with an error")
			}
			return
		}
		if m.Format != MarkerFormat || !Readable(m.Version) || (m.Encryption != "age" && m.Encryption != "none") {
			t.Fatalf("ParseMarker accepted %+v", m)
		}
		id, err := m.RepoID()
		if err != nil {
			t.Fatalf("ParseMarker accepted a marker whose id does not decode: %v", err)
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseMarker(again)
		if err != nil {
			t.Fatalf("a marker does not survive being written back: %v", err)
		}
		if id2, _ := m2.RepoID(); id2 != id || m2.Encryption != m.Encryption {
			t.Fatalf("written back, %+v became %+v", m, m2)
		}
	})
}

// FuzzValidName: localfs.ValidName is the gate for every name from the
// relay (localfs has no fuzz target of its own). What it accepts on an OS
// passes the independent oracle there; windows and darwin accept nothing
// linux refuses.
func FuzzValidName(f *testing.F) {
	for _, s := range nameSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ok := map[string]bool{}
		for _, goos := range goosList {
			err := localfs.ValidName(name, goos)
			if err != nil {
				var ne *localfs.NameError
				if !errors.As(err, &ne) {
					t.Fatalf("ValidName(%q, %s) gave %T, not a *NameError", name, goos, err)
				}
				continue
			}
			ok[goos] = true
			if why := unsafePath(name, goos); why != "" {
				t.Fatalf("ValidName accepts %q on %s, yet it is unsafe: %s", name, goos, why)
			}
		}
		if (ok["windows"] || ok["darwin"]) && !ok["linux"] {
			t.Fatalf("%q is valid on windows or darwin but not on linux", name)
		}
	})
}

// --- seeds ---

type seed struct {
	name string
	data []byte
}

const (
	cidA = "aaaaaaaaaaaaaaaaaaaaaaaaaa"
	cidB = "bbbbbbbbbbbbbbbbbbbbbbbbbb"
	objA = "cccccccccccccccccccccccccc"
)

var hash32 = strings.Repeat("ab", 32)

func change(p string) Change {
	return Change{Path: p, Kind: KindFile, Version: Vector{cidA: 3}, By: "alpha", Hash: hash32, Size: 5, MTime: 1764086400123456789, Mode: 0o644,
		Data: []Ref{{Obj: objA, Off: 0, Len: 5, Size: 5}}}
}

func manifestJSON(changes ...Change) []byte {
	m := Manifest{V: Version, Client: "alpha", Seq: 7, Epoch: 1, Clock: 3, Pullers: []string{cidB}, Need: 1, Changes: changes, Objects: []string{objA}}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// hostileNames are names a hostile relay would try; the fuzzers start from them.
var hostileNames = []string{"../x", "a/../../x", "/etc/passwd", "//server/share/x", "C:/x", "C:x", `..\x`, `a\b`,
	"a\x00b", "a\nb", "a//b", "a/", "./a", "a/.", "CON", "aux.txt", "LPT1.log", "COM¹", "con .txt", "a.", "a ",
	"a:b", "q?", "caf\xe9", "\u202etxt.exe", strings.Repeat("x", 256), "ok/name.txt", "über/straße.txt", "..."}

func manifestSeeds() []seed {
	del := Change{Path: "old.txt", Kind: KindDelete, Version: Vector{cidA: 4}, By: "alpha"}
	link := Change{Path: "link", Kind: KindSymlink, Version: Vector{cidA: 5}, By: "alpha", Hash: hash32, Target: "docs/a.txt"}
	mv := change("new.txt")
	mv.From = "old.txt"
	big := change("disk.img")
	big.Size, big.Data = 3<<20, []Ref{{Obj: objA, Size: 1 << 20, Hash: hash32}, {Obj: objA, Size: 2 << 20, Hash: hash32}}
	out := []seed{
		{"good_file", manifestJSON(change("docs/a.txt"))},
		{"good_all_kinds", manifestJSON(change("docs/a.txt"), del, link, mv, big)},
		{"good_empty", manifestJSON()},
		{"bad_duplicate", manifestJSON(change("a.txt"), change("a.txt"))},
		{"bad_overflow_sizes", manifestJSON(func() Change {
			c := change("x.txt")
			c.Data = []Ref{{Obj: objA, Size: 1 << 62}, {Obj: objA, Size: 1 << 62}, {Obj: objA, Size: 1 << 62}, {Obj: objA, Size: 1<<62 + 5}}
			return c
		}())},
		{"bad_unknown_version", []byte(`{"v":2,"seq":7,"changes":[]}`)},
		{"odd_numbers", []byte(`{"v":1,"seq":18446744073709551615,"need":-1,"changes":[{"path":"a","kind":"file","version":{"aaaaaaaaaaaaaaaaaaaaaaaaaa":1e3},"size":-5}]}`)},
		{"odd_nulls", []byte(`{"v":1,"seq":0,"pullers":null,"changes":[{"path":null,"kind":null,"version":null,"data":null}]}`)},
		{"odd_duplicate_keys", []byte(`{"v":1,"seq":7,"changes":[{"path":"ok.txt","path":"../x","kind":"delete","version":{"aaaaaaaaaaaaaaaaaaaaaaaaaa":1}}]}`)},
	}
	for i, n := range hostileNames {
		out = append(out, seed{fmt.Sprintf("name_%02d", i), manifestJSON(change(n))})
	}
	mvOut := change("in.txt")
	mvOut.From = "../outside.txt"
	out = append(out, seed{"bad_rename_from", manifestJSON(mvOut)})
	return out
}

func pageSeeds() []seed {
	entry := change("docs/a.txt")
	entry.Data = nil
	page := func(cs ...Change) []byte {
		b, _ := json.Marshal(IndexPage{V: Version, Entries: cs})
		return b
	}
	withData := change("b.txt")
	return []seed{
		{"good_page", page(entry, Change{Path: "gone.txt", Kind: KindDelete, Version: Vector{cidA: 2}, By: "alpha"})},
		{"bad_data", page(withData)},
		{"bad_path", page(func() Change { c := entry; c.Path = "../x"; return c }())},
		{"bad_version", []byte(`{"v":0,"entries":[]}`)},
	}
}

type headSeed struct {
	base string
	seq  uint64
	kind uint8
}

func headSeeds() []headSeed {
	return []headSeed{
		{cidA + ".0000000000000001", 1, 0},
		{cidA + ".a0000000000000002", 2, 1},
		{cidA + ".w0000000000000003", 3, 2},
		{cidA + ".000000000000000A", 0xa, 0},
		{cidA + ".ffffffffffffffff", 1<<64 - 1, 0},
		{cidA + ".a000000000000000", 0xa000000000000000, 0},
		{cidA + ".000000000000001", 0, 0},
		{cidA + ".x0000000000000001", 0, 0},
		{strings.ToUpper(cidA) + ".0000000000000001", 0, 0},
		{cidA + "..0000000000000001", 0, 0},
		{cidA + ".+000000000000001", 0, 0},
		{"not-a-head", 0, 0},
		{"", 0, 0},
	}
}

func markerSeeds() []seed {
	return []seed{
		{"good_age", []byte(`{"format":"escale-relay","version":1,"repository":"0123456789abcdef0123456789abcdef","encryption":"age","created":"2026-11-25T16:00:00Z"}`)},
		{"good_none", []byte(`{"format":"escale-relay","version":1,"repository":"0123456789abcdef0123456789abcdef","encryption":"none","created":"2026-11-25T16:00:00Z"}`)},
		{"bad_version", []byte(`{"format":"escale-relay","version":3,"repository":"0123456789abcdef0123456789abcdef","encryption":"age"}`)},
		{"bad_id", []byte(`{"format":"escale-relay","version":1,"repository":"0123","encryption":"age"}`)},
		{"bad_encryption", []byte(`{"format":"escale-relay","version":1,"repository":"0123456789abcdef0123456789abcdef","encryption":"rot13"}`)},
		{"odd_case", []byte(`{"FORMAT":"escale-relay","Version":1,"REPOSITORY":"0123456789ABCDEF0123456789ABCDEF","encryption":"age"}`)},
		{"odd_types", []byte(`{"format":["escale-relay"],"version":"1"}`)},
		{"empty", []byte(``)},
	}
}

func nameSeeds() []string { return hostileNames }

// TestFuzzSeedCorpus keeps testdata/fuzz in step with the seeds above, so
// the committed corpus is what `go test` replays.
func TestFuzzSeedCorpus(t *testing.T) {
	files := map[string]string{}
	for _, s := range manifestSeeds() {
		files["FuzzManifestDecode/"+s.name] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s.data)
	}
	for _, s := range pageSeeds() {
		files["FuzzIndexPageDecode/"+s.name] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s.data)
	}
	for i, s := range headSeeds() {
		files[fmt.Sprintf("FuzzParseHead/seed_%02d", i)] = fmt.Sprintf("go test fuzz v1\nstring(%q)\nuint64(%d)\nuint8(%d)\n", s.base, s.seq, s.kind)
	}
	for _, s := range markerSeeds() {
		files["FuzzParseMarker/"+s.name] = fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s.data)
	}
	for i, s := range nameSeeds() {
		files[fmt.Sprintf("FuzzValidName/seed_%02d", i)] = fmt.Sprintf("go test fuzz v1\nstring(%q)\n", s)
	}
	var missing []string
	for rel, want := range files {
		p := filepath.Join("testdata", "fuzz", filepath.FromSlash(rel))
		if *updateCorpus {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != want {
			missing = append(missing, rel)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Fatalf("the committed seed corpus is out of date (%d files, e.g. %s); run go test ./pkg/protocol -run TestFuzzSeedCorpus -update-corpus", len(missing), missing[0])
	}
}
