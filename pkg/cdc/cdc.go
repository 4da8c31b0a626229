// Package cdc cuts a stream into content-defined chunks with a keyed gear
// hash (FastCDC's hash and skipping of the first min bytes). The gear table
// derives from a secret key, so the boundaries, and so the chunk sizes, say
// nothing about the content to whoever sees only the chunks' sizes.
//
// It does not use FastCDC's normalized chunking (a stricter cut mask below
// the average, a looser one above). Measured on 64 MiB of random data with
// 256 KiB / 512 KiB / 2 MiB, level 2 re-sent 3.2 MB on average (9.3 MB at
// worst) for 1 MiB overwritten, against 2.2 MB (5.6 MB) with one mask:
// where a chunk is cut then depends on where it began, so after an edit the
// boundaries take several chunks to fall back in step. One mask keeps
// restic's behaviour there (and is as fast).
//
// The API follows github.com/restic/chunker, which it replaces: a Chunker
// reads the stream in large blocks and Next returns one chunk at a time in
// the caller's buffer.
package cdc

import (
	"fmt"
	"io"
	"math/bits"

	"github.com/zeebo/blake3"
)

// gearContext is the BLAKE3 derive-key context of the gear table.
const gearContext = "escale cdc gear v1"

// window is how many trailing bytes the gear hash depends on: each byte's
// entry is shifted out of the 64-bit state after 64 more bytes.
const window = 64

// bufSize is how much the Chunker reads at once: large enough that reads
// cost little, small enough to stay in L2 cache between the hashing and the
// copy into the chunk (256 KiB measured ~8 % faster than 1 MiB).
const bufSize = 256 << 10

// Params holds a keyed gear table. It is read-only once made, so one Params
// serves any number of Chunkers at once.
type Params struct {
	gear [256]uint64
}

// NewParams derives the gear table from key (BLAKE3 in derive-key mode,
// 2 KiB of its output).
func NewParams(key [32]byte) *Params {
	var out [256 * 8]byte
	blake3.DeriveKey(gearContext, key[:], out[:])
	p := &Params{}
	for i := range p.gear {
		b := out[i*8 : i*8+8]
		p.gear[i] = uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
	}
	return p
}

// Chunk is one piece of the stream: Length bytes from offset Start. Data
// holds them, in the buffer given to Next when its capacity sufficed.
type Chunk struct {
	Start  uint
	Length uint
	Data   []byte
}

// Chunker cuts one stream. It is not safe for concurrent use.
type Chunker struct {
	gear *[256]uint64
	rd   io.Reader

	buf        []byte // read ahead: buf[bpos:bmax] is not yet chunked
	bpos, bmax int
	err        error // the reader's error (io.EOF at the end), once buf is drained

	start uint // stream offset of the next chunk

	min, max int
	mask     uint64 // a cut where the hash's masked bits are all zero
}

// New returns a Chunker cutting r into chunks of min to max bytes. avg,
// a power of two, sets the cut probability: as with restic's chunker, the
// mean chunk is about min+avg (less what max cuts off). New panics on sizes
// that make no sense (min > max, avg not a power of two or below 64):
// they are constants of the caller.
func (p *Params) New(r io.Reader, minSize, avgSize, maxSize int) *Chunker {
	if minSize < 0 || maxSize <= 0 || minSize > maxSize || avgSize < 64 || avgSize&(avgSize-1) != 0 {
		panic(fmt.Sprintf("cdc: bad chunk sizes min=%d avg=%d max=%d", minSize, avgSize, maxSize))
	}
	// The mask tests the top bits: they depend on the most bytes (bit i on
	// the last i+1), so a cut depends on nearly the whole window.
	b := bits.TrailingZeros(uint(avgSize))
	return &Chunker{
		gear: &p.gear,
		rd:   r,
		buf:  make([]byte, bufSize),
		min:  minSize,
		max:  maxSize,
		mask: ^uint64(0) << (64 - b),
	}
}

// Next returns the next chunk, or io.EOF after the last. The chunk's Data
// is buf[:Length] when cap(buf) >= max (buf's contents are overwritten);
// otherwise it is newly allocated. Every chunk but the last holds min to
// max bytes. A read error other than io.EOF is returned as is.
func (c *Chunker) Next(buf []byte) (Chunk, error) {
	data := buf[:0]
	n := 0 // len(data)
	var h uint64
	// Hashing starts a window before min, so the state at min is the full
	// windowed hash: a cut depends only on the 64 bytes before it, never on
	// where the chunk began, and boundaries resynchronise after an edit.
	warm := max(c.min-window, 0)
	for n < c.max {
		if c.bpos == c.bmax {
			if c.err == nil {
				c.fill()
			}
			if c.bpos == c.bmax {
				if c.err != io.EOF {
					return Chunk{}, c.err
				}
				if n == 0 {
					return Chunk{}, io.EOF
				}
				break
			}
		}
		avail := c.buf[c.bpos:c.bmax]
		switch {
		case n < warm: // below min less a window: no hash needed
			k := min(len(avail), warm-n)
			data = append(data, avail[:k]...)
			c.bpos += k
			n += k
		case n < c.min: // the window before min: hashed, never cut
			k := min(len(avail), c.min-n)
			for _, b := range avail[:k] {
				h = h<<1 + c.gear[b]
			}
			data = append(data, avail[:k]...)
			c.bpos += k
			n += k
		default:
			seg := avail[:min(len(avail), c.max-n)]
			k, h2, found := cut(seg, h, c.mask, c.gear)
			h = h2
			data = append(data, seg[:k]...)
			c.bpos += k
			n += k
			if found {
				return c.emit(data), nil
			}
		}
	}
	return c.emit(data), nil
}

func (c *Chunker) emit(data []byte) Chunk {
	ch := Chunk{Start: c.start, Length: uint(len(data)), Data: data}
	c.start += uint(len(data))
	return ch
}

// fill reads the next block into buf (after it is drained), as much as the
// reader gives before it errs: short reads do not shorten the block, so
// neither the work per byte nor the chunks depend on how the reader reads.
func (c *Chunker) fill() {
	c.bpos, c.bmax = 0, 0
	empty := 0
	for c.bmax < len(c.buf) {
		k, err := c.rd.Read(c.buf[c.bmax:])
		c.bmax += k
		if err != nil {
			c.err = err // io.EOF at the end, else the caller's to wrap
			return
		}
		if k > 0 {
			empty = 0
		} else if empty++; empty >= 100 {
			c.err = io.ErrNoProgress
			return
		}
	}
}

// cut rolls the gear hash h over p and reports the length of p up to and
// including the first byte after which h&mask is zero. Two bytes a step:
// the second state comes from h in one shift and one add (the entries' sum
// does not depend on h), which halves the serial dependency chain.
func cut(p []byte, h, mask uint64, g *[256]uint64) (int, uint64, bool) {
	i := 0
	for ; i+2 <= len(p); i += 2 {
		q := p[i : i+2 : i+2]
		a := g[q[0]]
		h1 := h<<1 + a
		h = h<<2 + (a<<1 + g[q[1]])
		if h1&mask == 0 {
			return i + 1, h1, true
		}
		if h&mask == 0 {
			return i + 2, h, true
		}
	}
	if i < len(p) {
		h = h<<1 + g[p[i]]
		if h&mask == 0 {
			return i + 1, h, true
		}
		i++
	}
	return i, h, false
}
