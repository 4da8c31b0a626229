package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// Sealer writes objects. It is safe for concurrent use and reuses zstd
// encoders between objects.
type Sealer struct {
	plain   bool
	kr      *Keyring // nil in plain mode
	repoID  [16]byte
	epoch   uint32
	noZstd  bool
	encOpts []zstd.EOption
	codecs  sync.Pool // *codec
	bufs    sync.Pool // *sealBufs
}

// sealBufs are the probe and record buffers of one object, pooled because
// every object needs 128 KiB of them.
type sealBufs struct {
	probe, rec []byte
}

// codec is a pooled zstd encoder with its trial-compression buffer.
type codec struct {
	enc     *zstd.Encoder
	scratch []byte
}

// encoderWindow bounds the zstd window writers use; readers accept up to
// maxDecoderWindow, so the format can grow the window later without a version.
const encoderWindow = 4 << 20

// NewSealer returns a Sealer that encrypts to kr's recipient and
// authenticates with kr's MAC key. kr is the newest epoch's keyring.
func NewSealer(kr *Keyring, opts ...Option) *Sealer {
	s := newSealer(opts)
	s.kr = kr
	if kr != nil {
		s.repoID, s.epoch = kr.RepoID, kr.Epoch
	}
	return s
}

// NewPlainSealer returns a Sealer for repositories with encryption = none:
// same framing, no encryption, no padding, and a keyless SHA-256 checksum
// that catches corruption but not forgery.
func NewPlainSealer(repoID [16]byte, opts ...Option) *Sealer {
	s := newSealer(opts)
	s.plain, s.repoID = true, repoID
	return s
}

func newSealer(opts []Option) *Sealer {
	o := buildOptions(opts)
	return &Sealer{
		noZstd: o.noCompress,
		encOpts: []zstd.EOption{
			zstd.WithEncoderConcurrency(1), // synchronous: no goroutines to leak
			zstd.WithWindowSize(encoderWindow),
			zstd.WithEncoderCRC(false), // age and the MAC already cover integrity
			zstd.WithEncoderLevel(zstd.SpeedDefault),
		},
	}
}

func (s *Sealer) getCodec() (*codec, error) {
	if c, ok := s.codecs.Get().(*codec); ok {
		return c, nil
	}
	enc, err := zstd.NewWriter(nil, s.encOpts...)
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return &codec{enc: enc}, nil
}

func (s *Sealer) putCodec(c *codec) {
	c.enc.Reset(io.Discard) // drop the reference to the finished object
	s.codecs.Put(c)
}

// Seal starts an object of the given kind stored at relay path name (relative
// to the repository root). Write the plaintext to the returned writer; Close
// writes the end, the MAC and the padding and finishes the encryption. The
// object is not valid until Close returns nil. Memory per object is bounded
// (a few hundred KiB of buffers), so objects may be of any size.
func (s *Sealer) Seal(dst io.Writer, kind Kind, name string) (io.WriteCloser, error) {
	if !kind.valid() {
		return nil, fmt.Errorf("seal %q: unknown object kind %d", name, kind)
	}
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("seal %q: %w", name, err)
	}
	w := &sealWriter{s: s, hdr: header{version: formatVersion, kind: kind, repoID: s.repoID, epoch: s.epoch, name: name}}
	if s.plain {
		w.hdr.flags = flagPlain
		w.out = dst
		w.mac = newTag(formatVersion, nil)
	} else {
		if s.kr == nil || s.kr.Identity == nil {
			return nil, fmt.Errorf("seal %q: sealer has no keyring", name)
		}
		aw, err := age.Encrypt(dst, s.kr.Recipient())
		if err != nil {
			return nil, fmt.Errorf("seal %q: %w", name, err)
		}
		w.out, w.ageW = aw, aw
		w.mac = newTag(formatVersion, s.kr)
	}
	// The tag covers every inner byte before it: header, framing, payload.
	w.tee = io.MultiWriter(w.out, w.mac)
	w.rw.w = w.tee
	w.bufs, _ = s.bufs.Get().(*sealBufs)
	if w.bufs == nil {
		w.bufs = &sealBufs{probe: make([]byte, 0, probeSize), rec: make([]byte, 0, MaxRecord)}
	}
	w.probe, w.rw.buf = w.bufs.probe[:0], w.bufs.rec[:0]
	return w, nil
}

// SealBytes seals a small object held in memory.
func (s *Sealer) SealBytes(kind Kind, name string, p []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(p) + len(p)/8 + 1024)
	w, err := s.Seal(&buf, kind, name)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(p); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var errClosed = errors.New("write to a closed object")

type sealWriter struct {
	s      *Sealer
	hdr    header
	out    io.Writer      // age writer, or dst in plain mode
	tee    io.Writer      // out, also feeding mac
	ageW   io.WriteCloser // nil in plain mode
	mac    hash.Hash
	probe  []byte // the first probeSize bytes, until the compression choice
	began  bool   // header written; later writes go to payload
	hdrLen int
	c      *codec    // set while compressing
	bufs   *sealBufs // returned to the pool by Close
	rw     recordWriter
	err    error // sticky
	closed bool
}

func (w *sealWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errClosed
	}
	n := len(p)
	if !w.began {
		k := min(probeSize-len(w.probe), len(p))
		w.probe = append(w.probe, p[:k]...)
		p = p[k:]
		if len(p) == 0 {
			// Wait for more: if Close comes next, the probe is the whole
			// payload and is compressed once, in one shot.
			return n, nil
		}
		if err := w.begin(false); err != nil {
			return 0, w.fail(err)
		}
	}
	if len(p) == 0 {
		return n, nil
	}
	var err error
	if w.c != nil {
		_, err = w.c.enc.Write(p)
	} else {
		_, err = w.rw.Write(p)
	}
	if err != nil {
		return 0, w.fail(err)
	}
	return n, nil
}

// begin chooses raw or zstd from the probe, writes the header and the probe.
// final means the probe is the whole payload: its trial compression is then
// the stored payload and nothing is compressed twice.
func (w *sealWriter) begin(final bool) error {
	var packed []byte
	if !w.s.noZstd && len(w.probe) > 0 {
		c, err := w.s.getCodec()
		if err != nil {
			return err
		}
		c.scratch = c.enc.EncodeAll(w.probe, c.scratch[:0])
		packed = c.scratch
		// Store raw unless zstd saves at least 1/32: random or already
		// compressed data then costs no decompression on every read.
		if len(packed) < len(w.probe)-len(w.probe)/32 {
			w.hdr.flags |= flagZstd
			w.c = c
		} else {
			packed = nil
			w.s.putCodec(c)
		}
	}
	hb := w.hdr.marshal()
	if _, err := w.tee.Write(hb); err != nil {
		return err
	}
	w.hdrLen = len(hb)
	w.began = true
	var err error
	switch {
	case w.c != nil && final:
		_, err = w.rw.Write(packed)
	case w.c != nil:
		w.c.enc.Reset(&w.rw)
		_, err = w.c.enc.Write(w.probe)
	default:
		_, err = w.rw.Write(w.probe)
	}
	w.probe = nil
	return err
}

func (w *sealWriter) fail(err error) error {
	w.err = fmt.Errorf("seal %q: %w", w.hdr.name, err)
	return w.err
}

// Close finishes the object. It is idempotent and returns the first error.
func (w *sealWriter) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err == nil {
		if err := w.finish(); err != nil {
			w.fail(err)
		}
	}
	if w.c != nil && w.err == nil {
		w.s.putCodec(w.c)
	}
	w.c = nil
	w.s.bufs.Put(w.bufs)
	w.bufs, w.probe, w.rw.buf = nil, nil, nil
	return w.err
}

func (w *sealWriter) finish() error {
	if !w.began {
		if err := w.begin(true); err != nil {
			return err
		}
	} else if w.c != nil {
		if err := w.c.enc.Close(); err != nil {
			return err
		}
	}
	if err := w.rw.flush(); err != nil {
		return err
	}
	if _, err := w.tee.Write([]byte{0}); err != nil { // end record
		return err
	}
	if _, err := w.out.Write(w.mac.Sum(nil)); err != nil {
		return err
	}
	if w.ageW == nil {
		return nil // plain objects are not padded: their size is no secret
	}
	l := int64(w.hdrLen) + w.rw.n + 1 + tagLen
	if err := writeZeros(w.out, padded(l)-l); err != nil {
		return err
	}
	return w.ageW.Close()
}

func writeZeros(w io.Writer, n int64) error {
	var zeros [4096]byte
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := w.Write(zeros[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
