package engine

// What the relay learns (PROTOCOL.md §13, invariant 5) and how a client
// meets a key that does not open the repository.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/storage"
)

// relayNamePattern is every name the layout of PROTOCOL.md §2 allows.
var relayNamePattern = regexp.MustCompile(`^(escale\.json|keys/([a-z2-7]{26}|passphrase)-[0-9a-f]{16}\.(age|ring|info)|heads/[a-z2-7]{26}\.[aw]?[0-9a-f]{16}|heads/epoch\.[0-9a-f]{16}|clients/[a-z2-7]{26}/(info|acks|wants|log/[0-9a-f]{16}|data/[a-z2-7]{26}|index/([a-z2-7]{26}|root)\.[0-9a-f]{16}))$`)

// leakForms are the encodings of secret in which a careless format would
// carry it: plain, hex, and base64 (standard and URL alphabets) at each of
// the three byte alignments.
func leakForms(secret string) [][]byte {
	forms := [][]byte{[]byte(secret), []byte(hex.EncodeToString([]byte(secret)))}
	for pad := range 3 {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			s := enc.EncodeToString([]byte(strings.Repeat("\x00", pad) + secret))
			// Keep the characters that depend on the secret's bytes only.
			from, to := (pad*8+5)/6, (pad+len(secret))*8/6
			forms = append(forms, []byte(s[from:to]))
		}
	}
	return forms
}

// expansions are what a reader could make of an object without a key: the
// bytes, and whatever gzip or zstd stream starts anywhere in them.
func expansions(data []byte) [][]byte {
	out := [][]byte{data}
	const limit = 64 << 20
	for i := 0; i+4 <= len(data); i++ {
		switch {
		case data[i] == 0x1f && data[i+1] == 0x8b:
			if zr, err := gzip.NewReader(bytes.NewReader(data[i:])); err == nil {
				if b, _ := io.ReadAll(io.LimitReader(zr, limit)); len(b) > 0 {
					out = append(out, b)
				}
			}
		case bytes.Equal(data[i:i+4], []byte{0x28, 0xb5, 0x2f, 0xfd}):
			if zr, err := zstd.NewReader(bytes.NewReader(data[i:]), zstd.WithDecoderMaxMemory(limit)); err == nil {
				if b, _ := io.ReadAll(io.LimitReader(zr, limit)); len(b) > 0 {
					out = append(out, b)
				}
				zr.Close()
			}
		}
	}
	return out
}

// TestRelayBlind syncs a tree whose names and contents carry markers, and
// checks every relay object, at the moment the relay holds the most, for
// the markers in any form, for file sizes, and for names off the layout.
func TestRelayBlind(t *testing.T) {
	w := newWorld(t)
	const clientA, clientB = "OKAPI-CLIENT-MARKER", "TAPIR-CLIENT-MARKER"
	a, b := w.client(clientA), w.client(clientB)
	b.ok()
	const (
		dirMark  = "QUOKKA-DIR-MARKER"
		nameMark = "PANGOLIN-NAME-MARKER"
		bodyMark = "AXOLOTL-BODY-MARKER"
		linkMark = "NARWHAL-LINK-MARKER"
	)
	mtime := time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC)
	deep := "top-" + dirMark + "/nested-" + dirMark + "/deeper-" + dirMark
	sizes := map[int]string{}
	small := func(rel string, n int) {
		body := strings.Repeat(bodyMark+" ", n/len(bodyMark+" ")+1)[:n]
		a.write(rel, body, mtime)
		sizes[n] = rel
	}
	small(deep+"/"+nameMark+".txt", 777)
	small(deep+"/other-"+nameMark+".md", 5555)
	small("short-"+nameMark, 7)
	small("odd-"+nameMark+".csv", 1234567%100000)
	big := randomBytes(t, SmallFile+700<<10)
	for i := 0; i+len(bodyMark) < len(big); i += 4096 {
		copy(big[i:], bodyMark)
	}
	a.write(deep+"/big-"+nameMark+".bin", string(big), mtime)
	if err := os.Symlink("target-"+linkMark, filepath.Join(a.dir, "link-"+nameMark)); err != nil {
		t.Fatal(err)
	}
	a.ok()
	// Compressed sizes leak as much as raw ones.
	cod := newCodec()
	for n, rel := range maps.Clone(sizes) {
		data, _ := os.ReadFile(filepath.Join(a.dir, rel))
		if len(data) != n {
			t.Fatalf("%s is %d bytes, want %d", rel, len(data), n)
		}
		z, _ := cod.compress(nil, data)
		sizes[len(z)] = rel + " (compressed)"
	}

	secrets := []string{dirMark, nameMark, bodyMark, linkMark, clientA, clientB,
		fmt.Sprint(mtime.Unix()), fmt.Sprint(mtime.UnixNano()), mtime.Format(time.RFC3339)}
	var segments []string
	for rel := range tree(t, a.dir) {
		segments = append(segments, strings.Split(rel, "/")...)
	}
	check := func(when string) {
		objects := w.relayFiles()
		if len(objects) < 8 {
			t.Fatalf("%s: only %d relay objects; the test is not looking at a synced relay", when, len(objects))
		}
		for name, data := range objects {
			if !relayNamePattern.MatchString(name) {
				t.Errorf("%s: relay name %q is not one of the layout's", when, name)
			}
			for _, seg := range segments {
				if strings.Contains(strings.ToLower(name), strings.ToLower(seg)) {
					t.Errorf("%s: relay name %q contains the path component %q", when, name, seg)
				}
			}
			if rel, ok := sizes[len(data)]; ok && name != protocol.MarkerName {
				t.Errorf("%s: relay object %s is %d bytes, the size of %s", when, name, len(data), rel)
			}
			for _, exp := range expansions(data) {
				for _, secret := range secrets {
					for _, form := range leakForms(secret) {
						if bytes.Contains(exp, form) {
							t.Errorf("%s: relay object %s shows %q (as %q)", when, name, secret, form)
						}
					}
				}
			}
		}
	}
	check("after alpha's push")
	b.ok()
	check("after beta's pull")
	sameTrees(t, a, b)
}

// TestWrongOrMissingKey: a client whose key does not open the repository
// stops at once with a message saying what to do, and changes nothing.
func TestWrongOrMissingKey(t *testing.T) {
	w := newWorld(t)
	a := w.client("alpha") // scrypt work factor 10: the good key is cheap to try
	a.write("f.txt", "hello", fixedTime())
	a.ok()
	wrongID, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		tweak func(*Options)
		want  []string
	}{
		{"wrong-passphrase", func(o *Options) { o.Credentials.Passphrase = "Correct horse battery staple" }, []string{"wrong passphrase"}},
		{"wrong-identity", func(o *Options) { o.Credentials = protocol.Credentials{Identity: wrongID} }, []string{"wrong passphrase or key"}},
		{"no-key", func(o *Options) { o.Credentials = protocol.Credentials{} }, []string{"encrypted", "passphrase"}},
		{"configured-unencrypted", func(o *Options) { o.Encrypted, o.Credentials = false, protocol.Credentials{} }, []string{`"age"`, `"none"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.relayFiles()
			dir := t.TempDir()
			relay, err := storage.Open(context.Background(), w.relay)
			if err != nil {
				t.Fatal(err)
			}
			opts := Options{Name: "t", Path: dir, Client: "beta", StateDir: t.TempDir(), Encrypted: true,
				Credentials: protocol.Credentials{Passphrase: "correct horse battery staple"}, Logger: a.e.log}
			tc.tweak(&opts)
			start := time.Now()
			e, err := New(context.Background(), relay, opts)
			took := time.Since(start)
			if err == nil {
				e.Close()
				t.Fatal("a client started without the repository's key")
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Fatalf("the error does not say %q: %v", s, err)
				}
			}
			// Measured, not asserted (no wall-clock assertions): reported.
			t.Logf("refused after %v: %v", took, err)
			if d := diffTrees(names(before), names(w.relayFiles())); d != "" {
				t.Fatalf("a refused client changed the relay: %s", d)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("a refused client wrote to its folder: %v", entries)
			}
		})
	}
	t.Run("plain-repository-configured-encrypted", func(t *testing.T) {
		pw := newWorld(t)
		pw.client("alpha", func(o *Options) { o.Encrypted, o.Credentials = false, protocol.Credentials{} }).ok()
		relay, err := storage.Open(context.Background(), pw.relay)
		if err != nil {
			t.Fatal(err)
		}
		_, err = New(context.Background(), relay, Options{Name: "t", Path: t.TempDir(), Client: "beta", StateDir: t.TempDir(), Encrypted: true,
			Credentials: protocol.Credentials{Passphrase: "x"}, Logger: a.e.log})
		if err == nil || !strings.Contains(err.Error(), `"none"`) {
			t.Fatalf("an encrypted client opened a plain repository: %v", err)
		}
	})
	// A plain object slipped into an encrypted repository is refused.
	t.Run("plain-object-in-encrypted-repository", func(t *testing.T) {
		b := w.client("beta")
		b.ok()
		a.write("g.txt", "second", fixedTime())
		a.ok()
		var id [16]byte
		if _, err := hex.Decode(id[:], []byte(a.e.repo.ID())); err != nil {
			t.Fatal(err)
		}
		name := protocol.ManifestName(a.e.CID(), 2)
		m := a.manifest(2)
		plain, err := envelope.NewPlainSealer(id).SealBytes(envelope.KindManifest, name, mustJSON(t, m))
		if err != nil {
			t.Fatal(err)
		}
		tp := w.tamper()
		tp.put(name, plain)
		f := w.freeze(b)
		b.refused(false, name, "unencrypted")
		f.check(w)
		tp.repair()
		converge(t, a, b)
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLeakDetector: the checks of TestRelayBlind find a secret in each form
// they claim to, embedded in noise.
func TestLeakDetector(t *testing.T) {
	const secret = "AXOLOTL-BODY-MARKER"
	noise := func() []byte { return randomBytes(t, 1000) }
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("prefix " + secret + " suffix"))
	zw.Close()
	zs := zstdBytes([]byte(strings.Repeat("filler ", 100) + secret))
	for name, payload := range map[string][]byte{
		"plain":       []byte(secret),
		"hex":         []byte(hex.EncodeToString([]byte("x" + secret))),
		"base64-pad0": []byte(base64.StdEncoding.EncodeToString([]byte(secret + "tail"))),
		"base64-pad1": []byte(base64.StdEncoding.EncodeToString([]byte("a" + secret))),
		"base64-pad2": []byte(base64.URLEncoding.EncodeToString([]byte("ab" + secret + "c"))),
		"gzip":        gz.Bytes(),
		"zstd":        zs,
	} {
		data := append(append(noise(), payload...), noise()...)
		found := false
		for _, exp := range expansions(data) {
			for _, form := range leakForms(secret) {
				found = found || bytes.Contains(exp, form)
			}
		}
		if !found {
			t.Errorf("the detector misses the secret in %s form", name)
		}
	}
	if relayNamePattern.MatchString("clients/" + strings.Repeat("a", 26) + "/data/notes.txt") {
		t.Error("the layout pattern takes a file name for a data id")
	}
}
