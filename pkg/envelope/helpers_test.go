package envelope

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"filippo.io/age"
)

// testKeyring returns a fresh keyring of a fresh repository.
func testKeyring(t testing.TB, epoch uint32) *Keyring {
	t.Helper()
	var repo [16]byte
	copy(repo[:], RandomName())
	kr, err := NewKeyring(repo, epoch)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// fixedKeyring is a keyring with constant keys, so committed fuzz seeds stay
// openable. Never use it outside tests.
func fixedKeyring(t testing.TB) *Keyring {
	t.Helper()
	id, err := age.ParseX25519Identity("AGE-SECRET-KEY-1RA2L5U08YFWYQ3Y6RDCE9WQ7HPE2UZCKWPS9FSREUYRJPM0S482QXTAFP8")
	if err != nil {
		t.Fatal(err)
	}
	kr := &Keyring{Epoch: 1, Identity: id}
	h := sha256.Sum256([]byte("fuzz repo"))
	copy(kr.RepoID[:], h[:])
	kr.MACKey = sha256.Sum256([]byte("fuzz mac"))
	kr.NameKey = sha256.Sum256([]byte("fuzz name"))
	return kr
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// textBytes returns deterministic text-like data that zstd compresses about
// three to four times, like source code or documents.
func textBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	words := make([]string, 400)
	for i := range words {
		w := make([]byte, 2+r.IntN(9))
		for j := range w {
			w[j] = 'a' + byte(r.IntN(26))
		}
		words[i] = string(w)
	}
	var b bytes.Buffer
	for b.Len() < n {
		// Zipf-like: a few words are common.
		w := words[int(float64(len(words))*r.Float64()*r.Float64())]
		b.WriteString(w)
		switch r.IntN(12) {
		case 0:
			b.WriteString(".\n")
		case 1:
			fmt.Fprintf(&b, " %d ", r.IntN(10000))
		default:
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// wantVerify fails unless err is a *VerifyError (with reason, if not empty).
func wantVerify(t testing.TB, err error, reason string) *VerifyError {
	t.Helper()
	var ve *VerifyError
	if !errors.As(err, &ve) {
		t.Fatalf("want VerifyError %q, got %v", reason, err)
	}
	if reason != "" && ve.Reason != reason {
		t.Fatalf("want reason %q, got %v", reason, err)
	}
	if !strings.Contains(ve.Error(), ve.Reason) {
		t.Fatalf("message %q lacks its reason", ve.Error())
	}
	return ve
}

// decryptInner strips age from a sealed object, as a holder of the identity
// (but not necessarily of the MAC key) could.
func decryptInner(t testing.TB, kr *Keyring, obj []byte) []byte {
	t.Helper()
	r, err := age.Decrypt(bytes.NewReader(obj), kr.Identity)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return inner
}

// encryptInner wraps inner bytes in age for kr's recipient, as anyone who
// learned the (public) recipient could.
func encryptInner(t testing.TB, kr *Keyring, inner []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, kr.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	w.Write(inner)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// failingReader returns data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}
