package engine

// Hostile manifests sealed with the right keys: what a client that holds the
// repository key (a stolen laptop, a bug in another client) could publish.
// The envelope accepts them; the protocol and the engine must not.

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/protocol"
)

// forge publishes objects as alpha, recording them so the relay can be
// repaired afterwards.
type forge struct {
	t  *testing.T
	w  *world
	a  *client
	tp *tamper
}

func (f *forge) data(kind envelope.Kind, plain []byte) string {
	id := envelope.RandomName()
	f.tp.save(protocol.DataName(f.a.e.CID(), id))
	f.a.putData(kind, id, plain)
	return id
}

func blake(b []byte) string {
	sum := blake3.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// file is a change creating path with content, stored raw in its own pack.
func (f *forge) file(path string, content []byte) protocol.Change {
	id := f.data(envelope.KindPack, content)
	n := int64(len(content))
	return protocol.Change{Path: path, Kind: protocol.KindFile, Version: protocol.Vector{f.a.e.CID(): 100}, By: "alpha",
		Hash: blake(content), Size: n, MTime: fixedTime().UnixNano(), Mode: 0o644,
		Data: []protocol.Ref{{Obj: id, Len: n, Size: n}}}
}

// packedChunk is an update of big.bin, one chunk in a chunk pack that
// holds tail after it, its reference edited by edit.
func (f *forge) packedChunk(tail []byte, edit func(*protocol.Ref)) *protocol.Manifest {
	chunk := randomBytes(f.t, SmallFile+1000)
	id := f.data(envelope.KindPack, append(append([]byte{}, chunk...), tail...))
	n := int64(len(chunk))
	ref := protocol.Ref{Obj: id, Len: n, Size: n, Hash: blake(chunk)}
	edit(&ref)
	return f.manifest(protocol.Change{Path: "big.bin", Kind: protocol.KindFile, Version: protocol.Vector{f.a.e.CID(): 100}, By: "alpha",
		Hash: blake(chunk), Size: n, MTime: fixedTime().UnixNano(), Mode: 0o644, Data: []protocol.Ref{ref}})
}

func (f *forge) manifest(changes ...protocol.Change) *protocol.Manifest {
	return &protocol.Manifest{V: protocol.Version, Client: "alpha", Seq: 2, Time: fixedTime(), Need: 1, Changes: changes}
}

// publish writes m as alpha's update 2, whatever m.Seq says.
func (f *forge) publish(m *protocol.Manifest) {
	f.t.Helper()
	name, head := protocol.ManifestName(f.a.e.CID(), 2), protocol.Head{CID: f.a.e.CID(), Seq: 2}
	f.tp.save(name)
	f.tp.save(head.Name())
	if _, err := f.a.e.repo.PutJSON(f.t.Context(), envelope.KindManifest, name, m); err != nil {
		f.t.Fatal(err)
	}
	if err := f.a.e.repo.PutHead(f.t.Context(), head); err != nil {
		f.t.Fatal(err)
	}
}

// hostileScene: beta applied alpha's update 1; alpha's keys then publish
// update 2, built by the case.
type hostileScene struct {
	w    *world
	a, b *client
	f    *forge
	m2   string // the hostile manifest's relay name
}

func newHostile(t *testing.T, tweak ...func(*Options)) *hostileScene {
	t.Helper()
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta", tweak...)
	b.ok()
	a.write("ok.txt", "fine", fixedTime())
	a.ok()
	b.ok()
	return &hostileScene{w: w, a: a, b: b, f: &forge{t: t, w: w, a: a, tp: w.tamper()}, m2: protocol.ManifestName(a.e.CID(), 2)}
}

// refuse checks that beta refuses update 2 on two rounds, changes nothing,
// acknowledges nothing, and converges after the relay is repaired.
func (s *hostileScene) refuse(t *testing.T, failOnly bool, want ...string) {
	t.Helper()
	fr := s.w.freeze(s.b)
	for range 2 {
		s.b.refused(failOnly, want...)
		fr.check(s.w)
	}
	if n := s.b.acked(s.a); n != 1 {
		t.Fatalf("beta acknowledged update %d of alpha; the hostile update 2 must stay unacknowledged", n)
	}
	s.f.tp.repair()
	s.a.write("after.txt", "after the repair", fixedTime())
	converge(t, s.a, s.b)
}

// TestHostileManifestPaths: names that leave the folder or break the path
// rules of PROTOCOL.md §10. Each is refused with the manifest's name and
// the rule, and nothing from the manifest is applied.
func TestHostileManifestPaths(t *testing.T) {
	for _, tc := range []struct {
		name, path, from string
		delete           bool
		want             string
	}{
		{"dotdot", "../escaped.txt", "", false, `".." segment`},
		{"dotdot-nested", "sub/../../escaped.txt", "", false, `".." segment`},
		{"dotdot-delete", "../outside/victim.txt", "", true, `".." segment`},
		{"dot", "./escaped.txt", "", false, `"." or ".." segment`},
		{"absolute", "/ABS/escaped.txt", "", false, "absolute"},
		{"unc", "//server/share/escaped.txt", "", false, "absolute"},
		{"nul", "esc\x00aped.txt", "", false, "NUL"},
		{"control", "esc\naped.txt", "", false, "control"},
		{"backslash", `..\escaped.txt`, "", false, "backslash"},
		{"backslash-inner", `sub\escaped.txt`, "", false, "backslash"},
		{"empty", "", "", false, "empty name"},
		{"trailing-slash", "sub/", "", false, "empty segment"},
		{"double-slash", "sub//x.txt", "", false, "empty segment"},
		{"long-segment", strings.Repeat("x", 256), "", false, "longer than"},
		{"rename-from-outside", "moved.txt", "../outside/victim.txt", false, "rename source"},
		{"rename-from-absolute", "moved.txt", "/etc/passwd", false, "rename source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newHostile(t)
			out := s.w.outside()
			if err := os.WriteFile(filepath.Join(out, "victim.txt"), []byte("must survive"), 0o644); err != nil {
				t.Fatal(err)
			}
			path := strings.Replace(tc.path, "/ABS", filepath.ToSlash(out), 1)
			var c protocol.Change
			if tc.delete {
				c = protocol.Change{Path: path, Kind: protocol.KindDelete, Version: protocol.Vector{s.a.e.CID(): 100}, By: "alpha"}
			} else {
				c = s.f.file(path, []byte("hostile content"))
				c.From = tc.from
			}
			// A legitimate change first: nothing of the manifest may be applied.
			s.f.publish(s.f.manifest(s.f.file("aaa-first.txt", []byte("innocent")), c))
			s.refuse(t, false, s.m2, tc.want)
		})
	}
}

// TestHostileManifestFields: well-named manifests whose other fields lie.
func TestHostileManifestFields(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(s *hostileScene) *protocol.Manifest
		want  string
	}{
		{"duplicate-path", func(s *hostileScene) *protocol.Manifest {
			return s.f.manifest(s.f.file("dup.txt", []byte("one")), s.f.file("dup.txt", []byte("two")))
		}, "appears twice"},
		{"newer-version", func(s *hostileScene) *protocol.Manifest {
			m := s.f.manifest(s.f.file("x.txt", []byte("x")))
			m.V = protocol.Version + 1
			return m
		}, fmt.Sprintf("manifest version %d", protocol.Version+1)},
		{"seq-replayed-under-another-number", func(s *hostileScene) *protocol.Manifest {
			m := s.f.manifest(s.f.file("x.txt", []byte("x")))
			m.Seq = 1
			return m
		}, "seq 1"},
		{"other-clients-name", func(s *hostileScene) *protocol.Manifest {
			m := s.f.manifest(s.f.file("x.txt", []byte("x")))
			m.Client = "beta"
			return m
		}, `names client "beta"`},
		{"bad-object-id", func(s *hostileScene) *protocol.Manifest {
			c := s.f.file("x.txt", []byte("x"))
			c.Data[0].Obj = "../../keys/passphrase.age"
			return s.f.manifest(c)
		}, "bad data reference"},
		{"negative-offset", func(s *hostileScene) *protocol.Manifest {
			c := s.f.file("x.txt", []byte("x"))
			c.Data[0].Off = -1
			return s.f.manifest(c)
		}, "bad data reference"},
		{"size-not-sum-of-refs", func(s *hostileScene) *protocol.Manifest {
			c := s.f.file("x.txt", []byte("xyz"))
			c.Size = 2
			return s.f.manifest(c)
		}, "hold 3 bytes for a 2-byte file"},
		{"bad-hash", func(s *hostileScene) *protocol.Manifest {
			c := s.f.file("x.txt", []byte("x"))
			c.Hash = "zz"
			return s.f.manifest(c)
		}, "bad hash"},
		{"unknown-kind", func(s *hostileScene) *protocol.Manifest {
			c := s.f.file("x.txt", []byte("x"))
			c.Kind = "dir"
			return s.f.manifest(c)
		}, "unknown kind"},
		{"no-version", func(s *hostileScene) *protocol.Manifest {
			c := s.f.file("x.txt", []byte("x"))
			c.Version = nil
			return s.f.manifest(c)
		}, "no version"},
		{"bad-puller-id", func(s *hostileScene) *protocol.Manifest {
			m := s.f.manifest(s.f.file("x.txt", []byte("x")))
			m.Pullers = []string{"../../x"}
			return m
		}, "bad puller id"},
		{"symlink-without-target", func(s *hostileScene) *protocol.Manifest {
			c := s.f.file("x.txt", []byte("x"))
			c.Kind, c.Data = protocol.KindSymlink, nil
			return s.f.manifest(c)
		}, "symlink without target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newHostile(t)
			s.f.publish(tc.build(s))
			s.refuse(t, false, s.m2, tc.want)
		})
	}
}

// TestHostileManifestWindowsNames: a client on Windows (Options.GOOS)
// skips names Windows reserves or cannot hold — one file, reported, while
// the rest of the update applies and is acknowledged; one on Linux takes
// them as they are (one relay serves every OS; names are never mangled).
func TestHostileManifestWindowsNames(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"CON", "reserved"},
		{"aux.txt", "reserved"},
		{"sub/LPT1.log", "reserved"},
		{"com9", "reserved"},
		{"nul.tar.gz", "reserved"},
		{"CONIN$", "reserved"},
		{"trailing.", "ends with a dot or a space"},
		{"trailing ", "ends with a dot or a space"},
		{"a:b.txt", "drive letter"},
		{"C:/escaped.txt", "drive letter"},
		{"C:escaped.txt", "drive letter"},
		{"ab:c.txt", "not allowed on Windows"},
		{"q?.txt", "not allowed on Windows"},
		{"pipe|.txt", "not allowed on Windows"},
		{"star*.txt", "not allowed on Windows"},
		{"lt<.txt", "not allowed on Windows"},
		{`quote".txt`, "not allowed on Windows"},
	} {
		t.Run(strings.NewReplacer("*", "star", "?", "q", "|", "pipe", "<", "lt", `"`, "quote", "/", "-").Replace(tc.path), func(t *testing.T) {
			t.Parallel()
			s := newHostile(t, func(o *Options) { o.GOOS = "windows" })
			s.f.publish(s.f.manifest(s.f.file("aaa-first.txt", []byte("fine everywhere")), s.f.file(tc.path, []byte("for windows"))))
			res := s.b.ok()
			if msg := strings.Join(res.Problems, "; "); !strings.Contains(msg, tc.want) || !strings.Contains(msg, "not synced here") {
				t.Fatalf("the skipped name is not reported with %q: %q", tc.want, msg)
			}
			if got, _ := s.b.read("aaa-first.txt"); got != "fine everywhere" {
				t.Fatalf("the rest of the update was not applied: %q", got)
			}
			for p := range tree(t, s.b.dir) {
				if strings.Contains(p, strings.TrimSuffix(strings.TrimSuffix(tc.path, "."), " ")) && p != "aaa-first.txt" && p != "ok.txt" {
					t.Fatalf("the name Windows cannot hold was written as %q", p)
				}
			}
			if n := s.b.acked(s.a); n != 2 {
				t.Fatalf("beta acknowledged update %d; the update with one skipped name is done", n)
			}
		})
	}
	t.Run("linux-takes-them", func(t *testing.T) {
		t.Parallel()
		s := newHostile(t, func(o *Options) { o.GOOS = "linux" })
		s.f.publish(s.f.manifest(s.f.file("aux.txt", []byte("fine on linux")), s.f.file("q?.txt", []byte("also fine")), s.f.file("a:b.txt", []byte("and this"))))
		s.b.ok()
		for name, want := range map[string]string{"q?.txt": "also fine", "a:b.txt": "and this"} {
			if got, _ := s.b.read(name); got != want {
				t.Fatalf("a Linux client did not take %s, a name legal on Linux: %q", name, got)
			}
		}
	})
}

// TestHostileManifestSymlinks: a name whose parent is a symlink in the
// puller's folder would write outside it (PROTOCOL.md §10, invariant 6).
func TestHostileManifestSymlinks(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symlinks need privileges on Windows")
	}
	setup := func(t *testing.T) (*hostileScene, string) {
		s := newHostile(t)
		out := s.w.outside()
		if err := os.WriteFile(filepath.Join(out, "victim.txt"), []byte("must survive"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(out, filepath.Join(s.b.dir, "link")); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(s.b.dir, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../outside", filepath.Join(s.b.dir, "sub", "rel")); err != nil {
			t.Fatal(err)
		}
		s.b.ok() // publishes its own symlinks; alpha need not pull them
		return s, out
	}
	for _, tc := range []struct{ name, path string }{
		{"parent-is-symlink", "link/escaped.txt"},
		{"grandparent-is-symlink", "link/deeper/escaped.txt"},
		{"overwrite-through-symlink", "link/victim.txt"},
		{"relative-symlink-in-subfolder", "sub/rel/escaped.txt"},
		{"parent-is-a-file", "ok.txt/child.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := setup(t)
			s.f.publish(s.f.manifest(s.f.file(tc.path, []byte("hostile content"))))
			msg := "symlink"
			if strings.HasPrefix(tc.path, "ok.txt/") {
				msg = "not a directory"
			}
			s.refuse(t, false, tc.path, msg)
		})
	}
	// A manifest that makes a symlink and writes through it at once.
	t.Run("symlink-and-child-in-one-manifest", func(t *testing.T) {
		t.Parallel()
		s, out := setup(t)
		link := s.f.file("esc", nil)
		link.Kind, link.Target, link.Data, link.Hash = protocol.KindSymlink, out, nil, blake([]byte(out))
		s.f.publish(s.f.manifest(link, s.f.file("esc/pwn.txt", []byte("hostile content"))))
		fr := s.w.freeze(s.b)
		s.b.refused(false, "esc/pwn.txt", "symlink")
		if _, err := os.Lstat(filepath.Join(out, "pwn.txt")); err == nil {
			t.Fatal("a file was written through the symlink")
		}
		if _, err := os.Lstat(filepath.Join(s.b.dir, "esc")); err == nil {
			t.Fatal("bug (regression): a manifest whose esc/pwn.txt is refused still applied its symlink esc (PROTOCOL.md §10: nothing from a refused manifest is applied); Manifest.Validate could refuse a path whose ancestor is a symlink or file of the same manifest")
		}
		fr.check(s.w)
	})
	// Deletions and renames whose path leads through the symlink must not
	// touch what it points to.
	t.Run("delete-and-rename-through-symlink", func(t *testing.T) {
		t.Parallel()
		s, out := setup(t)
		del := protocol.Change{Path: "link/victim.txt", Kind: protocol.KindDelete, Version: protocol.Vector{s.a.e.CID(): 100}, By: "alpha"}
		mv := s.f.file("moved.txt", []byte("must survive"))
		mv.From = "link/victim.txt"
		s.f.publish(s.f.manifest(del, mv))
		if _, err := s.b.try(); err != nil {
			t.Logf("beta refused: %v", err)
		}
		if got, err := os.ReadFile(filepath.Join(out, "victim.txt")); err != nil || string(got) != "must survive" {
			t.Fatalf("the file behind the symlink was deleted or moved: %q, %v", got, err)
		}
	})
}

// TestHostileManifestData: references and sizes that lie about the data.
func TestHostileManifestData(t *testing.T) {
	zeros := func(n int) []byte { return make([]byte, n) }
	for _, tc := range []struct {
		name  string
		build func(s *hostileScene) *protocol.Manifest
		want  []string
		bug   string
	}{
		{"ref-past-the-pack", func(s *hostileScene) *protocol.Manifest {
			c := s.f.file("x.txt", []byte("0123456789"))
			c.Data[0].Off = 5
			return s.f.manifest(c)
		}, []string{"outside object"}, ""},
		{"ref-offset-overflows", func(s *hostileScene) *protocol.Manifest {
			c := s.f.file("x.txt", []byte("0123456789"))
			c.Data[0].Off, c.Data[0].Len = 1<<62, 1<<62 // Off+Len wraps negative
			return s.f.manifest(c)
		}, []string{"x.txt"}, "bug: a reference with Off = Len = 2^62 passes the bounds check of fetcher.blob (data.go: r.Off+r.Len overflows to a negative number) and slicing the pack panics; Validate or blob must check r.Off > len(obj) || r.Len > len(obj)-r.Off"},
		{"ref-sizes-overflow", func(s *hostileScene) *protocol.Manifest {
			stored := zstdBytes([]byte("hello"))
			id := s.f.data(envelope.KindPack, stored)
			huge := int64(1) << 62
			n := int64(len(stored))
			c := protocol.Change{Path: "x.txt", Kind: protocol.KindFile, Version: protocol.Vector{s.a.e.CID(): 100}, By: "alpha",
				Hash: blake([]byte("hello")), Size: 5, MTime: fixedTime().UnixNano(), Mode: 0o644,
				// The sizes add up to 2^64 + 5, which wraps to the declared 5.
				Data: []protocol.Ref{{Obj: id, Len: n, Size: huge, Z: true}, {Obj: id, Len: n, Size: huge, Z: true}, {Obj: id, Len: n, Size: huge, Z: true}, {Obj: id, Len: n, Size: huge + 5, Z: true}}}
			return s.f.manifest(c)
		}, []string{"x.txt"}, "bug: reference sizes that wrap around int64 pass Change.Validate (objects.go: total += r.Size overflows) and codec.decompress then allocates make([]byte, 0, 2^62) and panics; Validate must refuse a sum that overflows (or any r.Size > c.Size)"},
		{"raw-size-lies", func(s *hostileScene) *protocol.Manifest {
			c := s.f.file("x.txt", []byte("0123456789"))
			c.Data[0].Size, c.Size = 9, 9
			return s.f.manifest(c)
		}, []string{"blob holds 10 bytes, manifest says 9"}, ""},
		{"compressed-size-lies", func(s *hostileScene) *protocol.Manifest {
			content := bytes.Repeat([]byte("compressible "), 100)
			stored := zstdBytes(content)
			id := s.f.data(envelope.KindPack, stored)
			n := int64(len(content)) + 5
			c := protocol.Change{Path: "x.txt", Kind: protocol.KindFile, Version: protocol.Vector{s.a.e.CID(): 100}, By: "alpha",
				Hash: blake(content), Size: n, MTime: fixedTime().UnixNano(), Mode: 0o644,
				Data: []protocol.Ref{{Obj: id, Len: int64(len(stored)), Size: n, Z: true}}}
			return s.f.manifest(c)
		}, []string{"expands to"}, ""},
		{"hash-mismatch", func(s *hostileScene) *protocol.Manifest {
			c := s.f.file("x.txt", []byte("what the pack holds"))
			c.Hash = blake([]byte("what the manifest promises"))
			return s.f.manifest(c)
		}, []string{"x.txt", "does not match the manifest's hash"}, ""},
		{"chunk-content-not-its-hash", func(s *hostileScene) *protocol.Manifest {
			chunk := randomBytes(s.f.t, SmallFile+1000)
			id := s.f.data(envelope.KindChunk, chunk)
			n := int64(len(chunk))
			c := protocol.Change{Path: "big.bin", Kind: protocol.KindFile, Version: protocol.Vector{s.a.e.CID(): 100}, By: "alpha",
				Hash: blake(randomBytes(s.f.t, 64)), Size: n, MTime: fixedTime().UnixNano(), Mode: 0o644,
				Data: []protocol.Ref{{Obj: id, Size: n, Hash: blake(chunk)}}}
			return s.f.manifest(c)
		}, []string{"big.bin", "does not match the manifest's hash"}, ""},
		{"chunk-size-lies", func(s *hostileScene) *protocol.Manifest {
			chunk := randomBytes(s.f.t, SmallFile+1000)
			id := s.f.data(envelope.KindChunk, chunk)
			n := int64(len(chunk)) + 1
			c := protocol.Change{Path: "big.bin", Kind: protocol.KindFile, Version: protocol.Vector{s.a.e.CID(): 100}, By: "alpha",
				Hash: blake(append(chunk, 0)), Size: n, MTime: fixedTime().UnixNano(), Mode: 0o644,
				Data: []protocol.Ref{{Obj: id, Size: n, Hash: blake(chunk)}}}
			return s.f.manifest(c)
		}, []string{"big.bin", "manifest says"}, ""},
		{"chunk-pack-ref-past-its-end", func(s *hostileScene) *protocol.Manifest {
			return s.f.packedChunk(nil, func(r *protocol.Ref) { r.Off = 10 })
		}, []string{"big.bin"}, ""},
		{"chunk-pack-len-not-size", func(s *hostileScene) *protocol.Manifest {
			return s.f.packedChunk(nil, func(r *protocol.Ref) { r.Len++ })
		}, []string{"big.bin", "outside pack"}, ""},
		{"chunk-pack-longer-than-its-chunks", func(s *hostileScene) *protocol.Manifest {
			return s.f.packedChunk(zeros(8<<20), func(*protocol.Ref) {})
		}, []string{"big.bin", "exceeds limit"}, ""},
		{"chunk-pack-compressed-flag", func(s *hostileScene) *protocol.Manifest {
			return s.f.packedChunk(nil, func(r *protocol.Ref) { r.Z = true })
		}, []string{"big.bin", "outside pack"}, ""},
		{"blob-decompression-bomb", func(s *hostileScene) *protocol.Manifest {
			stored := zstdBytes(zeros(64 << 20)) // 64 MiB of zeros in a few KiB
			id := s.f.data(envelope.KindPack, stored)
			c := protocol.Change{Path: "bomb.txt", Kind: protocol.KindFile, Version: protocol.Vector{s.a.e.CID(): 100}, By: "alpha",
				Hash: blake(zeros(100)), Size: 100, MTime: fixedTime().UnixNano(), Mode: 0o644,
				Data: []protocol.Ref{{Obj: id, Len: int64(len(stored)), Size: 100, Z: true}}}
			return s.f.manifest(c)
		}, []string{"bomb.txt", "decompress"}, ""},
		{"chunk-decompression-bomb", func(s *hostileScene) *protocol.Manifest {
			id := s.f.data(envelope.KindChunk, zeros(64<<20)) // the envelope compresses it
			n := int64(SmallFile + 1)
			c := protocol.Change{Path: "bomb.bin", Kind: protocol.KindFile, Version: protocol.Vector{s.a.e.CID(): 100}, By: "alpha",
				Hash: blake(zeros(int(n))), Size: n, MTime: fixedTime().UnixNano(), Mode: 0o644,
				Data: []protocol.Ref{{Obj: id, Size: n, Hash: blake(zeros(int(n)))}}}
			return s.f.manifest(c)
		}, []string{"bomb.bin", "exceeds limit"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newHostile(t)
			s.f.publish(tc.build(s))
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			s.refuse(t, false, tc.want...)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			t.Logf("allocated %d MiB (two refused rounds, repair, convergence; tests run in parallel)", (after.TotalAlloc-before.TotalAlloc)>>20)
		})
	}
}

// TestHostileMissingDataObject: an update whose data is not on the relay
// writes nothing; the puller asks the publisher to send the content again,
// and says so.
func TestHostileMissingDataObject(t *testing.T) {
	s := newHostile(t)
	c := s.f.file("x.txt", []byte("x"))
	c.Data[0].Obj = envelope.RandomName()
	s.f.publish(s.f.manifest(c))
	fr := s.w.freeze(s.b)
	s.b.refused(false, "x.txt", "not on the relay", "asked for x.txt to be sent again")
	fr.check(s.w)
	if _, ok := s.b.read("x.txt"); ok {
		t.Fatal("x.txt was written without its data")
	}
	// alpha never held that content: the request stays open, and says so.
	s.b.refused(false, "send their content again")
	fr.check(s.w)
}

// TestHostileManifestMode: modes from the relay never make a file setuid or
// world-writable.
func TestHostileManifestMode(t *testing.T) {
	s := newHostile(t)
	c := s.f.file("mode.txt", []byte("mode"))
	c.Mode = 0o6777
	s.f.publish(s.f.manifest(c))
	s.b.ok()
	fi, err := os.Stat(filepath.Join(s.b.dir, "mode.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode(); m&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 || m.Perm()&0o002 != 0 {
		t.Fatalf("a hostile mode became %v", m)
	}
}

// TestHostilePackBomb: a pack whose plaintext is far bigger than what the
// manifest's references need. The puller must not hold it in memory.
func TestHostilePackBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("seals and opens 256 MiB")
	}
	s := newHostile(t)
	const bomb = 256 << 20
	id := s.f.data(envelope.KindPack, make([]byte, bomb)) // a few hundred KiB on the relay
	content := make([]byte, 100)
	c := protocol.Change{Path: "small.txt", Kind: protocol.KindFile, Version: protocol.Vector{s.a.e.CID(): 100}, By: "alpha",
		Hash: blake(content), Size: 100, MTime: fixedTime().UnixNano(), Mode: 0o644,
		Data: []protocol.Ref{{Obj: id, Len: 100, Size: 100}}}
	s.f.publish(s.f.manifest(c))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err := s.b.try()
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("round: %v, %+v; allocated %d MiB for a %d MiB pack whose references need 100 bytes", err, res, alloc>>20, bomb>>20)
	if alloc > 64<<20 {
		t.Fatalf("bug (regression): a pack sealed to expand to %d MiB made the puller allocate %d MiB: fetcher.object (data.go) reads a whole pack into memory with packLimit = 4 GiB; bound it by the largest Off+Len the manifest references in that pack (a legitimate pack ends there)", bomb>>20, alloc>>20)
	}
}

// TestHostileManifestTooBig: a manifest over protocol.MaxManifest, as
// plaintext (a compression bomb) or as stored bytes.
func TestHostileManifestTooBig(t *testing.T) {
	if testing.Short() {
		t.Skip("seals 65 MiB")
	}
	t.Run("plaintext", func(t *testing.T) {
		s := newHostile(t)
		m := s.f.manifest(s.f.file("x.txt", []byte("x")))
		padded := struct {
			*protocol.Manifest
			Pad string `json:"pad"` // unknown fields are ignored, but count
		}{m, strings.Repeat(" ", protocol.MaxManifest)}
		name := protocol.ManifestName(s.a.e.CID(), 2)
		s.f.tp.save(name)
		s.f.tp.save(protocol.Head{CID: s.a.e.CID(), Seq: 2}.Name())
		if _, err := s.a.e.repo.PutJSON(t.Context(), envelope.KindManifest, name, &padded); err != nil {
			t.Fatal(err)
		}
		if err := s.a.e.repo.PutHead(t.Context(), protocol.Head{CID: s.a.e.CID(), Seq: 2}); err != nil {
			t.Fatal(err)
		}
		s.refuse(t, false, s.m2, "exceeds limit")
	})
	t.Run("stored", func(t *testing.T) {
		s := newHostile(t)
		s.f.tp.put(s.m2, randomBytes(t, protocol.MaxManifest+2<<20))
		s.f.tp.put(protocol.Head{CID: s.a.e.CID(), Seq: 2}.Name(), nil)
		s.refuse(t, false, s.m2, "larger than")
	})
}

func zstdBytes(p []byte) []byte {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		panic(err)
	}
	defer enc.Close()
	return enc.EncodeAll(p, nil)
}

// TestNonUTF8NameNotMangled: manifests are JSON, which cannot carry a name
// that is not UTF-8 (Linux allows any bytes). Such a file must be reported
// and left out, never arrive elsewhere under another name (§10: never
// mangled silently; invariant 2: identical trees).
func TestNonUTF8NameNotMangled(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs a file system that stores any bytes in names")
	}
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	b.ok()
	a.write("caf\xe9.txt", "a Latin-1 name", fixedTime())
	a.write("plain.txt", "a UTF-8 name", fixedTime())
	a.ok()
	b.ok()
	for name := range tree(t, b.dir) {
		if name != "plain.txt" {
			t.Fatalf("bug (regression): alpha's file %q arrived on beta as %q: encoding/json replaced the invalid byte by U+FFFD in the manifest; the scanner (or push) should refuse names that are not valid UTF-8, with a Problems entry, like any other invalid name", "caf\xe9.txt", name)
		}
	}
	if got, _ := b.read("plain.txt"); got != "a UTF-8 name" {
		t.Fatalf("beta: %q", got)
	}
}
