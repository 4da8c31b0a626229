package envelope

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"unicode/utf8"

	"github.com/zeebo/blake3"
)

// Wire constants; FORMAT.md is their normative description.
const (
	// formatVersion is what Seal writes: 2 tags objects with keyed BLAKE3,
	// more than twice as fast as version 1's HMAC-SHA256, which readers
	// still accept (minFormatVersion).
	formatVersion    = 2
	minFormatVersion = 1

	// MaxNameLen bounds the relay name bound into an object's header.
	MaxNameLen = 1024
	// MaxRecord is the largest payload record; readers refuse larger ones so a
	// hostile length prefix cannot make them allocate.
	MaxRecord = 64 << 10
	// probeSize is how much payload is trial-compressed to choose zstd or raw.
	probeSize = 64 << 10
	// minPadded is the smallest padded inner size: every small object (heads,
	// acks, tiny manifests) looks the same from the relay.
	minPadded = 512
	// smallObject is the largest inner size padded to a power of two.
	smallObject = 64 << 10
	// headerFixedLen is the header length without the name.
	headerFixedLen = len(magic) + 1 + 1 + 1 + 16 + 4 + 2
	tagLen         = 32
	// NoLimit as maxPlain disables the plaintext size limit of Open. Use it
	// only for objects whose size the caller bounds some other way.
	NoLimit int64 = -1
)

// magic opens every inner (or plain) object; ageMagic opens age files.
const (
	magic    = "ESCALE"
	ageMagic = "age-encryption.org/"
)

// Header flag bits. Unknown bits are refused so a future flag cannot be
// silently ignored by an old reader.
const (
	flagZstd   = 1 << 0
	flagPlain  = 1 << 1
	flagsKnown = flagZstd | flagPlain
)

// Kind says what an object is for. It is bound into the header, so an object
// written as one kind cannot be served as another.
type Kind uint8

// Object kinds. Values are part of the wire format: never renumber.
const (
	KindManifest Kind = 1 + iota // clients/<id>/log/<seq>
	KindIndex                    // clients/<id>/index/<page>
	KindPack                     // packs of small files
	KindChunk                    // chunks of big files
	KindHead                     // heads/ markers
	KindKeyCheck                 // proves a key opens the repository
	KindAcks                     // clients/<id>/acks
	KindLock                     // admin locks
	kindEnd
)

func (k Kind) String() string {
	switch k {
	case KindManifest:
		return "manifest"
	case KindIndex:
		return "index"
	case KindPack:
		return "pack"
	case KindChunk:
		return "chunk"
	case KindHead:
		return "head"
	case KindKeyCheck:
		return "keycheck"
	case KindAcks:
		return "acks"
	case KindLock:
		return "lock"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func (k Kind) valid() bool { return k > 0 && k < kindEnd }

// header is the authenticated preamble of every object.
type header struct {
	version byte
	kind    Kind
	flags   byte
	repoID  [16]byte
	epoch   uint32
	name    string
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty object name")
	case len(name) > MaxNameLen:
		return fmt.Errorf("object name is %d bytes, longer than %d", len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return errors.New("object name is not valid UTF-8")
	}
	return nil
}

func (h *header) marshal() []byte {
	b := make([]byte, 0, headerFixedLen+len(h.name))
	b = append(b, magic...)
	b = append(b, h.version, byte(h.kind), h.flags)
	b = append(b, h.repoID[:]...)
	b = binary.BigEndian.AppendUint32(b, h.epoch)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.name)))
	return append(b, h.name...)
}

// reasonError explains why an object was refused, as a VerifyError reason.
type reasonError struct {
	reason string
	err    error
}

func (e *reasonError) Error() string { return e.reason + ": " + e.err.Error() }

// readHeader parses a header and returns it with its exact bytes (the MAC
// input). Nothing it reads is trusted until the tag is checked.
func readHeader(r io.Reader) (*header, []byte, error) {
	fixed := make([]byte, headerFixedLen)
	if _, err := io.ReadFull(r, fixed); err != nil {
		return nil, nil, &reasonError{ReasonTruncated, fmt.Errorf("reading header: %w", err)}
	}
	if string(fixed[:len(magic)]) != magic {
		return nil, nil, &reasonError{ReasonNotObject, errors.New("bad magic")}
	}
	p := fixed[len(magic):]
	if v := p[0]; v < minFormatVersion || v > formatVersion {
		return nil, nil, &reasonError{ReasonVersion, fmt.Errorf("format version %d, this escale reads %d to %d", v, minFormatVersion, formatVersion)}
	}
	h := &header{version: p[0], kind: Kind(p[1]), flags: p[2]}
	if h.flags&^flagsKnown != 0 {
		return nil, nil, &reasonError{ReasonVersion, fmt.Errorf("unknown header flags %#x", h.flags)}
	}
	copy(h.repoID[:], p[3:19])
	h.epoch = binary.BigEndian.Uint32(p[19:23])
	n := int(binary.BigEndian.Uint16(p[23:25]))
	if n == 0 || n > MaxNameLen {
		return nil, nil, &reasonError{ReasonFraming, fmt.Errorf("name length %d", n)}
	}
	name := make([]byte, n)
	if _, err := io.ReadFull(r, name); err != nil {
		return nil, nil, &reasonError{ReasonTruncated, fmt.Errorf("reading name: %w", err)}
	}
	h.name = string(name)
	return h, append(fixed, name...), nil
}

// padded returns the inner size an object of inner length l is padded to.
// Up to smallObject it is the next power of two (at least minPadded): small
// objects are the metadata (manifests, index pages, acks) whose exact sizes
// would tell how much changed, and doubling them costs little. Above, it is
// Padmé (Nikitin et al., "Reducing metadata leakage from encrypted files and
// communication with PURBs", 2019), which leaks O(log log l) bits of the
// size and costs at most 2^-5 here (less as l grows).
func padded(l int64) int64 {
	if l <= minPadded {
		return minPadded
	}
	if l <= smallObject {
		return int64(1) << bits.Len64(uint64(l-1))
	}
	e := bits.Len64(uint64(l)) - 1 // floor(log2 l)
	s := bits.Len64(uint64(e))     // floor(log2 e) + 1
	mask := int64(1)<<(e-s) - 1
	return (l + mask) &^ mask
}

// recordWriter cuts the payload stream into records of MaxRecord bytes (the
// last one shorter) so a reader never needs more than one record in memory.
type recordWriter struct {
	w   io.Writer
	buf []byte
	n   int64 // framed bytes written to w
}

func (rw *recordWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if len(rw.buf) == 0 && len(p) >= MaxRecord {
			// Full record straight from the caller's buffer: no copy.
			if err := rw.emit(p[:MaxRecord]); err != nil {
				return total - len(p), err
			}
			p = p[MaxRecord:]
			continue
		}
		k := min(MaxRecord-len(rw.buf), len(p))
		rw.buf = append(rw.buf, p[:k]...)
		p = p[k:]
		if len(rw.buf) == MaxRecord {
			if err := rw.flush(); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

func (rw *recordWriter) flush() error {
	if len(rw.buf) == 0 {
		return nil
	}
	err := rw.emit(rw.buf)
	rw.buf = rw.buf[:0]
	return err
}

func (rw *recordWriter) emit(rec []byte) error {
	var lb [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(lb[:], uint64(len(rec)))
	if _, err := rw.w.Write(lb[:k]); err != nil {
		return err
	}
	if _, err := rw.w.Write(rec); err != nil {
		return err
	}
	rw.n += int64(k + len(rec))
	return nil
}

// recordReader yields the concatenated record bytes and io.EOF at the end
// record. Its errors are sticky; err keeps the first one so that a wrapping
// zstd decoder cannot hide the real cause.
type recordReader struct {
	src  io.Reader
	left int   // bytes left in the current record
	n    int64 // framed bytes consumed, end record included
	done bool
	err  error
}

func (rr *recordReader) Read(p []byte) (int, error) {
	if rr.err != nil {
		return 0, rr.err
	}
	if rr.done {
		return 0, io.EOF
	}
	if rr.left == 0 {
		l, err := rr.readLen()
		if err != nil {
			rr.err = err
			return 0, err
		}
		if l == 0 {
			rr.done = true
			return 0, io.EOF
		}
		rr.left = l
	}
	if len(p) > rr.left {
		p = p[:rr.left]
	}
	n, err := rr.src.Read(p)
	rr.left -= n
	rr.n += int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // the end record is missing
	}
	if err != nil {
		rr.err = err
	}
	return n, err
}

// readLen reads a record length: a minimal uvarint of at most MaxRecord, so
// each payload has one framing only.
func (rr *recordReader) readLen() (int, error) {
	var v uint64
	var one [1]byte
	for i := 0; ; i++ {
		_, err := io.ReadFull(rr.src, one[:])
		b := one[0]
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return 0, err
		}
		rr.n++
		if i == 2 || (i > 0 && b == 0) {
			// MaxRecord needs 3 bytes at most; a zero final byte is non-minimal.
			if b&0x80 != 0 || b == 0 {
				return 0, &reasonError{ReasonFraming, errors.New("non-minimal or oversized record length")}
			}
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			break
		}
	}
	if v > MaxRecord {
		return 0, &reasonError{ReasonFraming, fmt.Errorf("record of %d bytes, limit %d", v, MaxRecord)}
	}
	return int(v), nil
}

// newTag returns the hash that computes an object's tag for its format
// version: keyed with the keyring's MAC key, or a plain checksum when kr is
// nil (encryption none, where it only detects corruption).
func newTag(version byte, kr *Keyring) hash.Hash {
	if version == 1 {
		if kr == nil {
			return sha256.New()
		}
		return hmac.New(sha256.New, kr.MACKey[:])
	}
	if kr == nil {
		return blake3.New()
	}
	h, err := blake3.NewKeyed(kr.tagKey())
	if err != nil {
		panic(err) // the key is always 32 bytes
	}
	return h
}

// tagKey is the BLAKE3 key of version 2 tags, derived from the MAC key so
// that no key is shared between two algorithms.
func (k *Keyring) tagKey() []byte {
	out := make([]byte, 32)
	blake3.DeriveKey("escale 2026-12-03 envelope tag v2", k.MACKey[:], out)
	return out
}
