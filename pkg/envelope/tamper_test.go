package envelope

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
)

// sealedPair returns an object and the opener that accepts it.
func sealedPair(t *testing.T, kr *Keyring, plain bool, payload []byte) ([]byte, *Opener) {
	t.Helper()
	s, o := NewSealer(kr), NewOpener([]*Keyring{kr})
	if plain {
		s, o = NewPlainSealer(kr.RepoID), NewPlainOpener(kr.RepoID)
	}
	obj, err := s.SealBytes(KindManifest, "clients/a/log/7", payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.OpenBytes(obj, KindManifest, "clients/a/log/7", NoLimit); err != nil {
		t.Fatal(err)
	}
	return obj, o
}

// mustReject opens a damaged object both whole and streamed and requires a
// VerifyError each time: never io.EOF, never a different plaintext.
func mustReject(t *testing.T, o *Opener, obj []byte, what string) {
	t.Helper()
	if got, err := o.OpenBytes(obj, KindManifest, "clients/a/log/7", NoLimit); err == nil {
		t.Fatalf("%s: accepted (%d bytes)", what, len(got))
	} else {
		wantVerify(t, err, "")
	}
	r, err := o.Open(bytes.NewReader(obj), KindManifest, "clients/a/log/7", NoLimit)
	if err == nil {
		_, err = io.Copy(io.Discard, iotest.HalfReader(r))
	}
	if err == nil {
		t.Fatalf("%s: streamed read reached EOF", what)
	}
	wantVerify(t, err, "")
}

func TestBitFlips(t *testing.T) {
	kr := testKeyring(t, 1)
	for _, c := range []struct {
		name    string
		plain   bool
		payload []byte
	}{
		{"age/raw", false, randomBytes(1, 300)},
		{"age/zstd", false, textBytes(1, 3000)},
		{"plain/raw", true, randomBytes(1, 300)},
		{"plain/zstd", true, textBytes(1, 3000)},
	} {
		t.Run(c.name, func(t *testing.T) {
			obj, o := sealedPair(t, kr, c.plain, c.payload)
			step := 1
			if testing.Short() {
				step = 11
			}
			for i := 0; i < len(obj); i += step {
				bad := bytes.Clone(obj)
				bad[i] ^= 1 << (i % 8)
				mustReject(t, o, bad, fmt.Sprintf("bit %d of byte %d flipped", i%8, i))
			}
		})
	}
}

func TestTruncation(t *testing.T) {
	kr := testKeyring(t, 1)
	for _, c := range []struct {
		name    string
		plain   bool
		payload []byte
	}{
		{"age/small", false, textBytes(2, 2000)},
		{"age/multichunk", false, randomBytes(2, 200<<10)},
		{"plain/small", true, textBytes(2, 2000)},
		{"plain/multirecord", true, randomBytes(2, 200<<10)},
	} {
		t.Run(c.name, func(t *testing.T) {
			obj, o := sealedPair(t, kr, c.plain, c.payload)
			cuts := 1500
			if testing.Short() {
				cuts = 150
			}
			for n := 0; n < len(obj); n += 1 + len(obj)/cuts {
				mustReject(t, o, obj[:n], fmt.Sprintf("truncated to %d of %d", n, len(obj)))
			}
			if !c.plain {
				// Around age's chunk boundaries: 64 KiB + 16 bytes of tag each,
				// after the header line "--- mac" and a 16-byte nonce.
				footer := bytes.Index(obj, []byte("\n---"))
				start := footer + 1 + bytes.IndexByte(obj[footer+1:], '\n') + 1 + 16
				for b := start; b < len(obj); b += 64<<10 + 16 {
					for n := b - 2; n <= b+2 && n < len(obj); n++ {
						mustReject(t, o, obj[:n], fmt.Sprintf("truncated to %d of %d", n, len(obj)))
					}
				}
			}
			mustReject(t, o, obj[:len(obj)-1], "last byte cut")
			for _, extra := range [][]byte{{0}, {1}, make([]byte, 100), obj} {
				mustReject(t, o, append(bytes.Clone(obj), extra...), fmt.Sprintf("%d bytes appended", len(extra)))
			}
		})
	}
}

func TestSwaps(t *testing.T) {
	kr := testKeyring(t, 1)
	for _, plain := range []bool{false, true} {
		s, o := NewSealer(kr), NewOpener([]*Keyring{kr})
		if plain {
			s, o = NewPlainSealer(kr.RepoID), NewPlainOpener(kr.RepoID)
		}
		obj, err := s.SealBytes(KindIndex, "clients/a/index/p1", []byte("page one"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = o.OpenBytes(obj, KindIndex, "clients/a/index/p2", NoLimit)
		wantVerify(t, err, ReasonName)
		_, err = o.OpenBytes(obj, KindIndex, "clients/b/index/p1", NoLimit)
		wantVerify(t, err, ReasonName)
		_, err = o.OpenBytes(obj, KindManifest, "clients/a/index/p1", NoLimit)
		wantVerify(t, err, ReasonKind)
	}
}

func TestOtherRepository(t *testing.T) {
	kr, other := testKeyring(t, 1), testKeyring(t, 1)
	obj, err := NewSealer(other).SealBytes(KindHead, "heads/a", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewOpener([]*Keyring{kr}).OpenBytes(obj, KindHead, "heads/a", NoLimit)
	wantVerify(t, err, ReasonWrongKey)

	// Same keys under another repository id (a copied key slot).
	clone := *kr
	clone.RepoID[0] ^= 1
	obj, err = NewSealer(&clone).SealBytes(KindHead, "heads/a", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewOpener([]*Keyring{kr}).OpenBytes(obj, KindHead, "heads/a", NoLimit)
	wantVerify(t, err, ReasonRepo)

	plainObj, err := NewPlainSealer(other.RepoID).SealBytes(KindHead, "heads/a", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewPlainOpener(kr.RepoID).OpenBytes(plainObj, KindHead, "heads/a", NoLimit)
	wantVerify(t, err, ReasonRepo)
}

func TestEpochs(t *testing.T) {
	kr1 := testKeyring(t, 1)
	kr2, err := NewKeyring(kr1.RepoID, 2)
	if err != nil {
		t.Fatal(err)
	}
	old, err := NewSealer(kr1).SealBytes(KindPack, "p", []byte("before rotation"))
	if err != nil {
		t.Fatal(err)
	}
	cur, err := NewSealer(kr2).SealBytes(KindPack, "p", []byte("after rotation"))
	if err != nil {
		t.Fatal(err)
	}
	both := NewOpener([]*Keyring{kr1, kr2})
	for _, obj := range [][]byte{old, cur} {
		if _, err := both.OpenBytes(obj, KindPack, "p", NoLimit); err != nil {
			t.Fatal(err)
		}
	}
	_, err = NewOpener([]*Keyring{kr2}).OpenBytes(old, KindPack, "p", NoLimit)
	ve := wantVerify(t, err, ReasonWrongKey)
	if ve.Name != "p" {
		t.Errorf("VerifyError names %q", ve.Name)
	}
	_, err = NewOpener(nil).OpenBytes(cur, KindPack, "p", NoLimit)
	wantVerify(t, err, ReasonWrongKey)

	// An object encrypted for epoch 2 whose header claims epoch 1.
	inner := decryptInner(t, kr2, cur)
	binary.BigEndian.PutUint32(inner[25:29], 1)
	_, err = both.OpenBytes(encryptInner(t, kr2, inner), KindPack, "p", NoLimit)
	wantVerify(t, err, ReasonEpoch)
}

// TestForgery: someone who knows the recipient (it is public-key encryption)
// but not the MAC key can make age objects; none of them opens.
func TestForgery(t *testing.T) {
	kr := testKeyring(t, 1)
	o := NewOpener([]*Keyring{kr})
	const name = "clients/a/log/7"

	forger := *kr
	forger.MACKey[0] ^= 1
	obj, err := NewSealer(&forger).SealBytes(KindManifest, name, []byte("delete everything"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.OpenBytes(obj, KindManifest, name, NoLimit)
	wantVerify(t, err, ReasonMAC)

	// Re-encrypted edits of a genuine object.
	genuine, err := NewSealer(kr).SealBytes(KindManifest, name, randomBytes(9, 1000))
	if err != nil {
		t.Fatal(err)
	}
	inner := decryptInner(t, kr, genuine)
	hdrLen := headerFixedLen + len(name)
	recLen := 2 // uvarint(1000)
	tagAt := hdrLen + recLen + 1000 + 1
	edit := func(what, reason string, f func([]byte) []byte) {
		t.Helper()
		_, err := o.OpenBytes(encryptInner(t, kr, f(bytes.Clone(inner))), KindManifest, name, NoLimit)
		if err == nil {
			t.Fatalf("%s: accepted", what)
		}
		wantVerify(t, err, reason)
	}
	if _, err := o.OpenBytes(encryptInner(t, kr, inner), KindManifest, name, NoLimit); err != nil {
		t.Fatalf("re-encrypted genuine object: %v", err) // the edits below start from a valid object
	}
	edit("payload byte", ReasonMAC, func(b []byte) []byte { b[hdrLen+recLen+5] ^= 0x20; return b })
	edit("tag byte", ReasonMAC, func(b []byte) []byte { b[tagAt+31] ^= 1; return b })
	edit("padding byte", ReasonPadding, func(b []byte) []byte { b[len(b)-1] = 1; return b })
	edit("padding longer", ReasonTrailing, func(b []byte) []byte { return append(b, 0) })
	edit("padding shorter", ReasonTruncated, func(b []byte) []byte { return b[:len(b)-1] })
	edit("no end record", ReasonTruncated, func(b []byte) []byte { return b[:tagAt-1] })
	edit("kind byte", ReasonKind, func(b []byte) []byte { b[7] = byte(KindPack); return b })
	edit("unknown version", ReasonVersion, func(b []byte) []byte { b[6] = formatVersion + 1; return b })
	edit("version 0", ReasonVersion, func(b []byte) []byte { b[6] = 0; return b })
	// Claiming version 1 makes the reader check an HMAC-SHA256 tag, which a
	// version 2 object does not carry.
	edit("older version", ReasonMAC, func(b []byte) []byte { b[6] = 1; return b })
	edit("unknown flag", ReasonVersion, func(b []byte) []byte { b[8] |= 0x80; return b })
	edit("plain flag", ReasonFraming, func(b []byte) []byte { b[8] |= flagPlain; return b })
	edit("bad magic", ReasonNotObject, func(b []byte) []byte { b[0] = 'X'; return b })
	edit("oversized record", ReasonFraming, func(b []byte) []byte {
		return append(append(b[:hdrLen:hdrLen], binary.AppendUvarint(nil, MaxRecord+1)...), make([]byte, MaxRecord+1)...)
	})
	edit("non-minimal length", ReasonFraming, func(b []byte) []byte {
		return append(b[:hdrLen:hdrLen], 0x85, 0x00)
	})
	// Moving an object and rewriting its header to the new name.
	moved := bytes.Clone(inner)
	moved[hdrLen-1] = '8' // ".../7" -> ".../8"
	_, err = o.OpenBytes(encryptInner(t, kr, moved), KindManifest, "clients/a/log/8", NoLimit)
	wantVerify(t, err, ReasonMAC)
}

func TestPlainChecksum(t *testing.T) {
	kr := testKeyring(t, 1)
	s, o := NewPlainSealer(kr.RepoID), NewPlainOpener(kr.RepoID)
	obj, err := s.SealBytes(KindManifest, "m", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(obj)
	bad[headerFixedLen+1+1] ^= 1 // first payload byte
	_, err = o.OpenBytes(bad, KindManifest, "m", NoLimit)
	wantVerify(t, err, ReasonChecksum)

	// A plain object re-checksummed after an edit opens: plain mode protects
	// against corruption only, as documented.
	edited := bytes.Clone(bad)
	sum := blake3.Sum256(edited[:len(edited)-tagLen])
	copy(edited[len(edited)-tagLen:], sum[:])
	got, err := o.OpenBytes(edited, KindManifest, "m", NoLimit)
	if err != nil || string(got) != "iello" {
		t.Fatalf("re-checksummed plain object: %q, %v", got, err)
	}
}

func TestModeMismatch(t *testing.T) {
	kr := testKeyring(t, 1)
	ageObj, err := NewSealer(kr).SealBytes(KindHead, "h", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	plainObj, err := NewPlainSealer(kr.RepoID).SealBytes(KindHead, "h", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewOpener([]*Keyring{kr}).OpenBytes(plainObj, KindHead, "h", NoLimit)
	wantVerify(t, err, ReasonPlain)
	_, err = NewPlainOpener(kr.RepoID).OpenBytes(ageObj, KindHead, "h", NoLimit)
	wantVerify(t, err, ReasonEncrypted)
	for _, o := range []*Opener{NewOpener([]*Keyring{kr}), NewPlainOpener(kr.RepoID)} {
		_, err = o.OpenBytes([]byte("<html>404 not found</html>"), KindHead, "h", NoLimit)
		wantVerify(t, err, ReasonNotObject)
		_, err = o.OpenBytes(nil, KindHead, "h", NoLimit)
		wantVerify(t, err, ReasonTruncated)
	}
}

func TestBomb(t *testing.T) {
	kr := testKeyring(t, 1)
	o := NewOpener([]*Keyring{kr})
	zeros := make([]byte, 32<<20)
	obj, err := NewSealer(kr).SealBytes(KindChunk, "c", zeros)
	if err != nil {
		t.Fatal(err)
	}
	if len(obj) > 64<<10 {
		t.Fatalf("32 MiB of zeros sealed to %d bytes", len(obj))
	}
	r, err := o.Open(bytes.NewReader(obj), KindChunk, "c", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	wantVerify(t, err, ReasonTooLarge)
	if n > 1<<20 {
		t.Errorf("delivered %d bytes past a 1 MiB limit", n)
	}

	// A frame that asks for a window beyond what readers allocate.
	s := NewSealer(kr)
	s.encOpts = append(s.encOpts, zstd.WithWindowSize(64<<20))
	obj, err = s.SealBytes(KindChunk, "c", textBytes(1, 300<<10))
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.OpenBytes(obj, KindChunk, "c", NoLimit)
	wantVerify(t, err, ReasonTooLarge)
}
