package envelope

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// Reasons a VerifyError gives. They are stable: callers may compare them.
const (
	ReasonWrongKey   = "no key of this repository can open it"
	ReasonNotObject  = "not an escale object"
	ReasonCorrupt    = "corrupted (decryption failed)"
	ReasonTruncated  = "truncated"
	ReasonTrailing   = "unexpected data after the end"
	ReasonMAC        = "MAC mismatch (tampered or forged)"
	ReasonChecksum   = "checksum mismatch (corrupted)"
	ReasonName       = "name mismatch (moved or swapped)"
	ReasonKind       = "kind mismatch (moved or swapped)"
	ReasonRepo       = "from another repository"
	ReasonEpoch      = "key epoch mismatch (forged header)"
	ReasonFraming    = "bad framing"
	ReasonPadding    = "bad padding"
	ReasonZstd       = "corrupt compressed data"
	ReasonTooLarge   = "decompressed size exceeds limit (bomb?)"
	ReasonVersion    = "written by a newer escale (unknown format version)"
	ReasonPlain      = "unencrypted object, but this client is configured for encryption = age"
	ReasonEncrypted  = "encrypted object, but this client is configured for encryption = none"
	maxDecoderWindow = 8 << 20
)

// hint tells the user what to do next, for reasons with a clear remedy.
func hint(reason string) string {
	switch reason {
	case ReasonWrongKey:
		return "this client lacks the key it was written with: re-import the repository key (escale key)"
	case ReasonVersion:
		return "upgrade escale on this client"
	case ReasonPlain, ReasonEncrypted:
		return "set encryption to match the repository (see escale.json on the relay)"
	}
	return ""
}

// VerifyError says a relay object failed verification. Treat the object as
// not there: never apply anything read from it.
type VerifyError struct {
	Name   string // the relay name the caller asked for
	Reason string // one of the Reason constants
	Err    error  // detail, may be nil
}

func (e *VerifyError) Error() string {
	s := fmt.Sprintf("relay object %q rejected: %s", e.Name, e.Reason)
	if e.Err != nil {
		s += " (" + e.Err.Error() + ")"
	}
	if h := hint(e.Reason); h != "" {
		s += "; " + h
	}
	return s
}

func (e *VerifyError) Unwrap() error { return e.Err }

// Opener reads objects. It holds the keyrings of every known epoch, so
// objects written before a key rotation still open. Safe for concurrent use.
type Opener struct {
	plain    bool
	repoID   [16]byte // plain mode
	krs      []*Keyring
	decOpts  []zstd.DOption
	decoders sync.Pool // *zstd.Decoder
}

// NewOpener returns an Opener for age repositories.
func NewOpener(krs []*Keyring, opts ...Option) *Opener {
	o := newOpener()
	o.krs = append([]*Keyring(nil), krs...)
	return o
}

// NewPlainOpener returns an Opener for repositories with encryption = none.
// It refuses encrypted objects, as an age Opener refuses plain ones.
func NewPlainOpener(repoID [16]byte, opts ...Option) *Opener {
	o := newOpener()
	o.plain, o.repoID = true, repoID
	return o
}

func newOpener() *Opener {
	return &Opener{decOpts: []zstd.DOption{
		zstd.WithDecoderConcurrency(1), // synchronous: no goroutines to leak
		zstd.WithDecoderMaxWindow(maxDecoderWindow),
		zstd.WithDecoderMaxMemory(maxDecoderWindow),
	}}
}

// Open verifies the header of the object read from src and returns a reader
// of its plaintext, expected to be of the given kind, stored at relay path
// name, and at most maxPlain bytes (NoLimit: unbounded).
//
// THE PLAINTEXT IS NOT AUTHENTICATED UNTIL THE READER RETURNS io.EOF. The MAC,
// the framing and the padding are checked at the end of the stream; any
// failure there (or earlier) is a *VerifyError. Stage what you read (temp
// file, buffer) and act on it only after io.EOF. OpenBytes does this for
// small objects.
//
// Errors reading src itself are returned as they are, wrapped, not as a
// VerifyError: the object may be fine and worth another try.
func (o *Opener) Open(src io.Reader, kind Kind, name string, maxPlain int64) (io.Reader, error) {
	fail := func(reason string, err error) (io.Reader, error) {
		return nil, &VerifyError{Name: name, Reason: reason, Err: err}
	}
	es := &errSource{r: src}
	br := bufio.NewReader(es)
	isAge, isPlain := hasPrefix(br, ageMagic), hasPrefix(br, magic)
	if es.err != nil {
		return nil, fmt.Errorf("read relay object %q: %w", name, es.err)
	}
	if _, err := br.Peek(1); err == io.EOF {
		return fail(ReasonTruncated, errors.New("empty object"))
	}
	switch {
	case o.plain && isAge:
		return fail(ReasonEncrypted, nil)
	case !o.plain && isPlain:
		return fail(ReasonPlain, nil)
	case o.plain && !isPlain, !o.plain && !isAge:
		return fail(ReasonNotObject, nil)
	}
	var inner io.Reader = br
	var kr *Keyring
	if !o.plain {
		var err error
		if inner, kr, err = o.decrypt(br); err != nil {
			if es.err != nil {
				return nil, fmt.Errorf("read relay object %q: %w", name, es.err)
			}
			var noMatch *age.NoIdentityMatchError
			if errors.As(err, &noMatch) || len(o.krs) == 0 {
				return fail(ReasonWrongKey, nil)
			}
			return fail(ReasonCorrupt, err)
		}
	}

	// The tag covers every inner byte before it; nothing before it is
	// trusted, only bounded, until finish compares the tag. The header says
	// which tag its format version uses.
	h, hb, err := readHeader(inner)
	if err != nil {
		return nil, classify(name, es, err)
	}
	mac := newTag(h.version, kr)
	mac.Write(hb)
	teed := io.TeeReader(inner, mac)
	wantRepo, wantEpoch, wantFlag := o.repoID, uint32(0), byte(flagPlain)
	if kr != nil {
		wantRepo, wantEpoch, wantFlag = kr.RepoID, kr.Epoch, 0
	}
	switch {
	case h.flags&flagPlain != wantFlag:
		return fail(ReasonFraming, errors.New("plain flag does not match the encryption"))
	case h.repoID != wantRepo:
		return fail(ReasonRepo, nil)
	case h.epoch != wantEpoch:
		return fail(ReasonEpoch, fmt.Errorf("encrypted for epoch %d, header says %d", wantEpoch, h.epoch))
	case h.name != name:
		return fail(ReasonName, fmt.Errorf("written as %q", h.name))
	case h.kind != kind:
		return fail(ReasonKind, fmt.Errorf("want %s, found %s", kind, h.kind))
	}

	r := &objectReader{o: o, name: name, src: es, inner: inner, hdrLen: len(hb), max: maxPlain, mac: mac}
	r.rec.src = teed
	r.payload = &r.rec
	if h.flags&flagZstd != 0 {
		dec, err := o.getDecoder()
		if err != nil {
			return nil, fmt.Errorf("open %q: %w", name, err)
		}
		if err := dec.Reset(&r.rec); err != nil {
			return nil, fmt.Errorf("open %q: %w", name, err)
		}
		r.dec, r.payload = dec, dec
	}
	return r, nil
}

// OpenBytes opens a whole object held in memory and returns its verified
// plaintext.
func (o *Opener) OpenBytes(data []byte, kind Kind, name string, maxPlain int64) ([]byte, error) {
	r, err := o.Open(bytes.NewReader(data), kind, name, maxPlain)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// decrypt starts age decryption with every epoch's identity and reports
// which keyring matched: its MAC key and epoch are the ones to check.
func (o *Opener) decrypt(src io.Reader) (io.Reader, *Keyring, error) {
	var hit *Keyring
	ids := make([]age.Identity, len(o.krs))
	for i, kr := range o.krs {
		ids[i] = epochIdentity{kr: kr, hit: &hit}
	}
	r, err := age.Decrypt(src, ids...)
	if err != nil {
		return nil, nil, err
	}
	return r, hit, nil
}

// epochIdentity is one epoch's identity that records a match.
type epochIdentity struct {
	kr  *Keyring
	hit **Keyring
}

func (e epochIdentity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	// escale writes exactly one recipient; refusing more bounds the work a
	// hostile header can demand.
	if len(stanzas) != 1 {
		return nil, fmt.Errorf("%d age recipients, escale writes 1", len(stanzas))
	}
	key, err := e.kr.Identity.Unwrap(stanzas)
	if err == nil {
		*e.hit = e.kr
	}
	return key, err
}

func (o *Opener) getDecoder() (*zstd.Decoder, error) {
	if d, ok := o.decoders.Get().(*zstd.Decoder); ok {
		return d, nil
	}
	d, err := zstd.NewReader(nil, o.decOpts...)
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return d, nil
}

func hasPrefix(br *bufio.Reader, prefix string) bool {
	b, _ := br.Peek(len(prefix))
	return string(b) == prefix
}

// errSource remembers the first error of the relay stream other than EOF, so
// an I/O failure is not mistaken for a forged object.
type errSource struct {
	r   io.Reader
	err error
}

func (s *errSource) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// classify turns an error met while reading an object into a VerifyError,
// or an I/O error of the source.
func classify(name string, src *errSource, err error) error {
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve
	}
	if src.err != nil {
		return fmt.Errorf("read relay object %q: %w", name, src.err)
	}
	var he *reasonError
	switch {
	case errors.As(err, &he):
		return &VerifyError{Name: name, Reason: he.reason, Err: he.err}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &VerifyError{Name: name, Reason: ReasonTruncated, Err: err}
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return &VerifyError{Name: name, Reason: ReasonTooLarge, Err: err}
	}
	return &VerifyError{Name: name, Reason: ReasonCorrupt, Err: err}
}

// objectReader yields the plaintext and verifies the trailer at its end.
type objectReader struct {
	o        *Opener
	name     string
	src      *errSource
	inner    io.Reader // decrypted object (the raw object in plain mode)
	hdrLen   int
	mac      hash.Hash
	rec      recordReader
	payload  io.Reader // rec, or dec reading rec
	dec      *zstd.Decoder
	max      int64
	produced int64
	err      error // sticky; io.EOF once verified
}

func (r *objectReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.max >= 0 {
		// Ask for one byte more than allowed to notice an overflow.
		if room := r.max - r.produced; int64(len(p)) > room+1 {
			p = p[:room+1]
		}
	}
	n, err := r.payload.Read(p)
	r.produced += int64(n)
	if r.max >= 0 && r.produced > r.max {
		return 0, r.setErr(&VerifyError{Name: r.name, Reason: ReasonTooLarge,
			Err: fmt.Errorf("more than %d bytes", r.max)})
	}
	switch {
	case err == io.EOF:
		if ferr := r.finish(); ferr != nil {
			return n, r.setErr(ferr)
		}
		r.err = io.EOF
		return n, io.EOF
	case err != nil:
		switch {
		case r.rec.err != nil:
			err = r.rec.err // the decoder may hide the cause
		case r.dec != nil && !errors.Is(err, zstd.ErrWindowSizeExceeded) && !errors.Is(err, zstd.ErrDecoderSizeExceeded):
			err = &reasonError{ReasonZstd, err}
		}
		return n, r.setErr(classify(r.name, r.src, err))
	}
	return n, nil
}

func (r *objectReader) setErr(err error) error {
	r.err = err
	r.releaseDecoder()
	return err
}

func (r *objectReader) releaseDecoder() {
	if r.dec != nil {
		r.dec.Reset(nil) // drop the reference to this object
		r.o.decoders.Put(r.dec)
		r.dec = nil
	}
}

// finish runs at the end of the payload: the stored payload must end where
// the decompressed one does, then come the tag, the exact padding and EOF.
func (r *objectReader) finish() error {
	fail := func(reason string, err error) error {
		return &VerifyError{Name: r.name, Reason: reason, Err: err}
	}
	if r.dec != nil {
		var b [1]byte
		if n, err := r.rec.Read(b[:]); n > 0 {
			return fail(ReasonFraming, errors.New("data after the compressed stream"))
		} else if err != io.EOF {
			return classify(r.name, r.src, err)
		}
		r.releaseDecoder()
	}
	tag := make([]byte, tagLen)
	if _, err := io.ReadFull(r.inner, tag); err != nil {
		return classify(r.name, r.src, err)
	}
	if !hmac.Equal(tag, r.mac.Sum(nil)) {
		if r.o.plain {
			return fail(ReasonChecksum, nil)
		}
		return fail(ReasonMAC, nil)
	}
	if !r.o.plain {
		l := int64(r.hdrLen) + r.rec.n + tagLen
		if err := readZeros(r.inner, padded(l)-l); err != nil {
			var ve *VerifyError
			if errors.As(err, &ve) {
				ve.Name = r.name
				return ve
			}
			return classify(r.name, r.src, err)
		}
	}
	var b [1]byte
	switch _, err := io.ReadFull(r.inner, b[:]); {
	case err == nil:
		return fail(ReasonTrailing, nil)
	case err != io.EOF:
		return classify(r.name, r.src, err)
	}
	return nil
}

func readZeros(r io.Reader, n int64) error {
	var buf [4096]byte
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := io.ReadFull(r, buf[:k]); err != nil {
			return err
		}
		for _, c := range buf[:k] {
			if c != 0 {
				return &VerifyError{Reason: ReasonPadding, Err: errors.New("non-zero padding")}
			}
		}
		n -= k
	}
	return nil
}
