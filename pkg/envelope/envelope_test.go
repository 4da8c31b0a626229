package envelope

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

func TestRoundTrip(t *testing.T) {
	kr := testKeyring(t, 1)
	modes := []struct {
		name string
		s    *Sealer
		o    *Opener
	}{
		{"age", NewSealer(kr), NewOpener([]*Keyring{kr})},
		{"plain", NewPlainSealer(kr.RepoID), NewPlainOpener(kr.RepoID)},
		{"age-nozstd", NewSealer(kr, WithoutCompression()), NewOpener([]*Keyring{kr})},
	}
	sizes := []int{0, 1, 2, 100, 4096, probeSize - 1, probeSize, probeSize + 1,
		2*MaxRecord - 1, 2 * MaxRecord, 2*MaxRecord + 1, 3*MaxRecord + 17, 1 << 20}
	for _, m := range modes {
		for _, data := range []struct {
			name string
			gen  func(uint64, int) []byte
		}{{"random", randomBytes}, {"text", textBytes}} {
			for _, n := range sizes {
				t.Run(fmt.Sprintf("%s/%s/%d", m.name, data.name, n), func(t *testing.T) {
					plain := data.gen(uint64(n), n)
					name := "clients/a/data/" + RandomName()
					obj, err := m.s.SealBytes(KindPack, name, plain)
					if err != nil {
						t.Fatal(err)
					}
					got, err := m.o.OpenBytes(obj, KindPack, name, int64(n))
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, plain) {
						t.Fatalf("plaintext differs: got %d bytes, want %d", len(got), n)
					}
					// Stream with short reads on both sides of Open: one byte
					// at a time for small objects, halves for big ones.
					short := iotest.OneByteReader
					if n > 3*MaxRecord {
						short = iotest.HalfReader
					}
					r, err := m.o.Open(short(bytes.NewReader(obj)), KindPack, name, int64(n))
					if err != nil {
						t.Fatal(err)
					}
					got, err = io.ReadAll(short(r))
					if err != nil || !bytes.Equal(got, plain) {
						t.Fatalf("streamed one byte at a time: %d bytes, %v", len(got), err)
					}
					if n > 0 {
						_, err = m.o.OpenBytes(obj, KindPack, name, int64(n-1))
						wantVerify(t, err, ReasonTooLarge)
					}
				})
			}
		}
	}
}

func TestCompressibleShrinks(t *testing.T) {
	kr := testKeyring(t, 1)
	s := NewSealer(kr)
	for _, n := range []int{4 << 10, 60 << 10, 1 << 20} {
		plain := textBytes(7, n)
		obj, err := s.SealBytes(KindChunk, "c", plain)
		if err != nil {
			t.Fatal(err)
		}
		if len(obj) >= len(plain)*2/3 {
			t.Errorf("%d bytes of text sealed to %d bytes: not compressed", n, len(obj))
		}
		inner := decryptInner(t, kr, obj)
		if inner[8]&flagZstd == 0 {
			t.Errorf("%d bytes of text stored raw", n)
		}
	}
	obj, err := s.SealBytes(KindChunk, "c", randomBytes(1, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if inner := decryptInner(t, kr, obj); inner[8]&flagZstd != 0 {
		t.Error("random data stored compressed")
	}
}

// TestStreamed10MiB pipes objects through Seal and Open without ever holding
// them whole.
func TestStreamed10MiB(t *testing.T) {
	kr := testKeyring(t, 1)
	s, o := NewSealer(kr), NewOpener([]*Keyring{kr})
	size := 10 << 20
	if testing.Short() {
		size = 3 << 20
	}
	for _, gen := range []func(uint64, int) []byte{randomBytes, textBytes} {
		plain := gen(3, size)
		want := sha256.Sum256(plain)
		pr, pw := io.Pipe()
		go func() {
			w, err := s.Seal(pw, KindChunk, "big")
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			// Uneven writes cross every internal boundary.
			for p := plain; len(p) > 0; {
				k := min(len(p), 1+len(p)%100003)
				if _, err := w.Write(p[:k]); err != nil {
					pw.CloseWithError(err)
					return
				}
				p = p[k:]
			}
			pw.CloseWithError(w.Close())
		}()
		r, err := o.Open(pr, KindChunk, "big", int64(size))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.CopyBuffer(h, r, make([]byte, 12345))
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(size) || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("streamed %d bytes, content mismatch", n)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	kr := testKeyring(t, 1)
	s, o := NewSealer(kr), NewOpener([]*Keyring{kr})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 6 {
				plain := textBytes(uint64(g*100+i), 1000+g*9000+i*7000)
				if i%2 == 1 {
					plain = randomBytes(uint64(g*100+i), len(plain))
				}
				name := fmt.Sprintf("clients/%d/log/%d", g, i)
				obj, err := s.SealBytes(KindManifest, name, plain)
				if err != nil {
					errs <- err
					return
				}
				got, err := o.OpenBytes(obj, KindManifest, name, NoLimit)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, plain) {
					errs <- fmt.Errorf("%s: plaintext differs", name)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestMarker: neither the plaintext nor the name can be read on the relay.
func TestMarker(t *testing.T) {
	kr := testKeyring(t, 1)
	s := NewSealer(kr)
	const marker = "MARKER-d41d8cd98f00b204"
	name := "clients/laptop/log/" + marker
	for _, plain := range [][]byte{
		[]byte(marker),
		bytes.Repeat([]byte(marker), 5000), // compressed
		append(randomBytes(1, 100<<10), marker...),
	} {
		obj, err := s.SealBytes(KindManifest, name, plain)
		if err != nil {
			t.Fatal(err)
		}
		for _, needle := range []string{marker, marker[:10], "laptop", "ESCALE"} {
			if bytes.Contains(obj, []byte(needle)) {
				t.Fatalf("sealed object contains %q", needle)
			}
		}
	}
}

// TestPaddingHidesSizes: payloads of 1..5000 bytes land in a handful of
// sizes, and large objects pay little.
func TestPaddingHidesSizes(t *testing.T) {
	kr := testKeyring(t, 1)
	s := NewSealer(kr)
	data := randomBytes(5, 5000)
	sizes := map[int]int{}
	step := 3
	if testing.Short() {
		step = 37
	}
	for n := 1; n <= len(data); n += step {
		obj, err := s.SealBytes(KindManifest, "clients/a/log/00000001", data[:n])
		if err != nil {
			t.Fatal(err)
		}
		sizes[len(obj)]++
	}
	// Powers of two from 512 to 8 KiB cover 1..5000 bytes plus overhead.
	if len(sizes) > 5 {
		t.Errorf("payloads of 1..5000 bytes give %d distinct object sizes: %v", len(sizes), sizes)
	}
	for _, n := range []int{70 << 10, 1 << 20, 9<<20 + 12345} {
		plain := randomBytes(uint64(n), n)
		obj, err := s.SealBytes(KindChunk, "c", plain)
		if err != nil {
			t.Fatal(err)
		}
		if over := len(obj) - n; over > n/32+1024 {
			t.Errorf("%d bytes sealed to %d: %d bytes of overhead", n, len(obj), over)
		}
	}
}

func TestPadded(t *testing.T) {
	prev := int64(0)
	distinct := map[int64]bool{}
	for l := int64(1); l < 1<<22; l += 1 + l/1000 {
		p := padded(l)
		if p < l || p < prev {
			t.Fatalf("padded(%d) = %d: below length or not monotone", l, p)
		}
		if l > smallObject && p-l > l/32 {
			t.Fatalf("padded(%d) = %d: over 1/32 overhead", l, p)
		}
		if padded(p) != p {
			t.Fatalf("padded(%d) = %d is not a fixed point", l, p)
		}
		prev = p
		distinct[p] = true
	}
	// Padmé: at most 2^(floor(log2 E)+1) sizes per octave for 2^E..2^(E+1).
	for e := 17; e < 22; e++ {
		n := 0
		for p := range distinct {
			if p > 1<<e && p <= 1<<(e+1) {
				n++
			}
		}
		if n > 32 {
			t.Errorf("%d padded sizes in (2^%d, 2^%d]", n, e, e+1)
		}
	}
}

func TestObjectName(t *testing.T) {
	kr, other := testKeyring(t, 1), testKeyring(t, 1)
	a := kr.ObjectName([]byte("clients"), []byte("x"))
	if a != kr.ObjectName([]byte("clients"), []byte("x")) {
		t.Fatal("ObjectName is not deterministic")
	}
	seen := map[string]string{}
	for _, c := range []struct {
		what string
		name string
	}{
		{"base", a},
		{"other key", other.ObjectName([]byte("clients"), []byte("x"))},
		{"moved boundary", kr.ObjectName([]byte("client"), []byte("sx"))},
		{"joined", kr.ObjectName([]byte("clientsx"))},
		{"random", RandomName()},
		{"random again", RandomName()},
	} {
		if len(c.name) != nameLen || strings.Trim(c.name, "abcdefghijklmnopqrstuvwxyz234567") != "" {
			t.Errorf("%s: name %q is not %d lowercase base32 characters", c.what, c.name, nameLen)
		}
		if prev, dup := seen[c.name]; dup {
			t.Errorf("%s and %s give the same name", prev, c.what)
		}
		seen[c.name] = c.what
	}
}

// TestReadErrorIsNotVerifyError: a failing relay connection must not look
// like a forged object (it is worth a retry, not an alarm).
func TestReadErrorIsNotVerifyError(t *testing.T) {
	kr := testKeyring(t, 1)
	obj, err := NewSealer(kr).SealBytes(KindChunk, "c", randomBytes(1, 300<<10))
	if err != nil {
		t.Fatal(err)
	}
	o := NewOpener([]*Keyring{kr})
	boom := errors.New("connection reset")
	for _, cut := range []int{0, 10, 500, 100 << 10} {
		r, err := o.Open(&failingReader{data: obj[:cut], err: boom}, KindChunk, "c", NoLimit)
		if err == nil {
			_, err = io.ReadAll(r)
		}
		var ve *VerifyError
		if !errors.Is(err, boom) || errors.As(err, &ve) {
			t.Errorf("cut at %d: want the I/O error, got %v", cut, err)
		}
	}
}

func TestSealErrors(t *testing.T) {
	kr := testKeyring(t, 1)
	s := NewSealer(kr)
	for _, c := range []struct {
		kind Kind
		name string
	}{
		{0, "x"}, {kindEnd, "x"}, {KindPack, ""}, {KindPack, strings.Repeat("n", MaxNameLen+1)}, {KindPack, "\xff"},
	} {
		if _, err := s.SealBytes(c.kind, c.name, nil); err == nil {
			t.Errorf("Seal(%v, %.20q) succeeded", c.kind, c.name)
		}
	}
	if _, err := NewSealer(nil).SealBytes(KindPack, "x", nil); err == nil {
		t.Error("a sealer without keyring sealed")
	}
	// A write error of the destination surfaces from Write or Close.
	boom := errors.New("disk full")
	w, err := s.Seal(errWriter{boom}, KindPack, "x")
	if err == nil {
		_, err = w.Write(randomBytes(1, 200<<10))
		if err == nil {
			err = w.Close()
		}
	}
	if !errors.Is(err, boom) {
		t.Errorf("want the destination's error, got %v", err)
	}
	// Close is idempotent, Write after Close fails.
	w, err = s.Seal(io.Discard, KindPack, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := w.Write([]byte("late")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

type errWriter struct{ err error }

func (e errWriter) Write([]byte) (int, error) { return 0, e.err }
