package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/escale-sync/escale/pkg/cdc"
	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/protocol"
)

// Chunking of big files (PROTOCOL.md §7): 256 KiB to 2 MiB, about 768 KiB
// on average. The cap bounds what a small change re-sends: at worst the two
// chunks around it, so a 1 MiB change costs at most about 5 MiB.
const (
	chunkMin     = 256 << 10
	chunkMax     = 2 << 20
	chunkAvgBits = 19
)

// chunkParams holds the repository's secret gear table (pkg/cdc): derived
// from the naming key, so chunk boundaries say nothing to the relay.
type chunkParams struct{ gear *cdc.Params }

func newChunkParams(nameKey [32]byte) *chunkParams {
	return &chunkParams{gear: cdc.NewParams(nameKey)}
}

// new chunks r; maxSize below chunkMax (a small quota: PROTOCOL.md §12)
// shrinks the chunks, keeping the boundaries' proportions. The mean chunk
// is about min + 2^chunkAvgBits: 768 KiB at full size.
func (p *chunkParams) new(r io.Reader, maxSize int64) *cdc.Chunker {
	lo, avg, hi := chunkMin, 1<<chunkAvgBits, chunkMax
	for maxSize > 0 && int64(hi) > maxSize && lo > 4096 {
		lo, avg, hi = lo/2, avg/2, hi/2
	}
	return p.gear.New(r, lo, avg, hi)
}

// codec compresses blobs one at a time. Blobs that do not shrink are stored raw.
type codec struct {
	mu  sync.Mutex
	enc *zstd.Encoder
	dec *zstd.Decoder
}

func newCodec() *codec {
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	dec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(chunkMax*2), zstd.WithDecoderMaxWindow(8<<20))
	return &codec{enc: enc, dec: dec}
}

// compress returns the stored form of p and whether it is compressed.
func (c *codec) compress(dst, p []byte) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	z := c.enc.EncodeAll(p, dst[:0])
	if len(z) < len(p)-len(p)/32 {
		return z, true
	}
	return append(dst[:0], p...), false
}

// decompress expands a stored blob of plaintext size size.
func (c *codec) decompress(stored []byte, z bool, size int64) ([]byte, error) {
	if !z {
		if int64(len(stored)) != size {
			return nil, fmt.Errorf("blob holds %d bytes, manifest says %d", len(stored), size)
		}
		return stored, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out, err := c.dec.DecodeAll(stored, make([]byte, 0, size))
	if err != nil {
		return nil, fmt.Errorf("decompress blob: %w", err)
	}
	if int64(len(out)) != size {
		return nil, fmt.Errorf("blob expands to %d bytes, manifest says %d", len(out), size)
	}
	return out, nil
}

// fetcher reads data objects of one pusher, keeping the last one read (a
// manifest lists the files of a pack one after the other).
type fetcher struct {
	e        *Engine
	cid      string
	packEnd  map[string]int64 // pack id → end of its last file in the manifest being applied
	lastName string
	last     []byte
	bytes    int64
	objects  int
	bufs     *bufPool // chunk pack buffers, shared by the fetchers of a round
}

// object reads and verifies a whole data object. Objects are bounded: packs
// by max_pack_size, chunks by chunkMax, so they are read into memory.
func (f *fetcher) object(ctx context.Context, id string, kind envelope.Kind, limit int64) ([]byte, error) {
	if id == f.lastName {
		return f.last, nil
	}
	data, err := f.load(ctx, id, kind, limit)
	if err != nil {
		return nil, err
	}
	f.count(int64(len(data)))
	f.lastName, f.last = id, data
	return data, nil
}

// load reads and verifies one data object. It touches no fetcher state, so
// the read-ahead of big files (bigio.go) runs several at once.
func (f *fetcher) load(ctx context.Context, id string, kind envelope.Kind, limit int64) ([]byte, error) {
	return f.loadInto(ctx, id, kind, limit, nil)
}

// loadInto is load reading into into when it is big enough.
func (f *fetcher) loadInto(ctx context.Context, id string, kind envelope.Kind, limit int64, into []byte) ([]byte, error) {
	rc, err := f.e.repo.OpenStream(ctx, kind, protocol.DataName(f.cid, id), limit)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// One buffer of the size the manifest implies (a pack's end, a chunk's
	// size), not io.ReadAll's doubling: fewer copies and less to zero. A
	// limit from a hostile manifest costs no more than what Open allows.
	size := limit
	if size < 0 || size > readHint {
		size = readHint
	}
	if int64(cap(into)) < size+bytes.MinRead {
		into = make([]byte, 0, size+bytes.MinRead)
	}
	buf := bytes.NewBuffer(into[:0])
	if _, err := buf.ReadFrom(rc); err != nil { // verified at EOF
		return nil, err
	}
	return buf.Bytes(), nil
}

// readHint caps the buffer load allocates before it has read anything.
const readHint = 2*chunkPackSize + chunkMax

// count notes one object read, on the round's goroutine only (Progress is
// promised to be called from there).
func (f *fetcher) count(n int64) {
	f.bytes += n
	f.objects++
	if f.e.opts.Progress != nil {
		f.e.opts.Progress(n)
	}
}

// setManifest notes where each pack of m ends, to bound its reading.
func (f *fetcher) setManifest(m *protocol.Manifest) {
	f.packEnd = map[string]int64{}
	for _, c := range m.Changes {
		for _, r := range c.Data {
			if r.Off >= 0 && r.Len >= 0 && r.Off <= packLimit && r.Len <= packLimit {
				f.packEnd[r.Obj] = max(f.packEnd[r.Obj], r.Off+r.Len)
			}
		}
	}
}

// packLimit bounds what a pack object may expand to.
const packLimit = 4 << 30

// blob returns the plaintext of one reference.
func (f *fetcher) blob(ctx context.Context, r protocol.Ref, chunked bool) ([]byte, error) {
	if chunked {
		if err := checkChunkRef(r); err != nil {
			return nil, err
		}
		kind, limit := envelope.KindChunk, int64(chunkMax)
		if r.Len > 0 {
			kind, limit = envelope.KindPack, f.packLimit(r.Obj)
		}
		obj, err := f.object(ctx, r.Obj, kind, limit)
		if err != nil {
			return nil, err
		}
		return chunkOf(r, obj)
	}
	if r.Size > SmallFile || r.Len > SmallFile+SmallFile/8+1024 {
		return nil, fmt.Errorf("%w: a packed file of %d bytes (%d stored); packs hold files of at most %d", protocol.ErrInvalid, r.Size, r.Len, SmallFile)
	}
	obj, err := f.object(ctx, r.Obj, envelope.KindPack, f.packLimit(r.Obj))
	if err != nil {
		return nil, err
	}
	if r.Off < 0 || r.Len < 0 || r.Off > int64(len(obj)) || r.Len > int64(len(obj))-r.Off {
		return nil, fmt.Errorf("%w: reference [%d,+%d) outside object %s of %d bytes", protocol.ErrInvalid, r.Off, r.Len, r.Obj, len(obj))
	}
	return f.e.codec.decompress(obj[r.Off:r.Off+r.Len], r.Z, r.Size)
}

// packLimit is what pack id may expand to: its plaintext ends where the
// last blob the manifest places in it ends.
func (f *fetcher) packLimit(id string) int64 {
	limit := f.packEnd[id]
	if limit <= 0 || limit > packLimit {
		limit = packLimit
	}
	return limit
}

// loadOnce reads the object of chunk reference r into ol, unless another
// chunk of it already does; ol.done closes when it is read. It runs on the
// read-ahead's goroutines: it touches no fetcher state.
func (f *fetcher) loadOnce(ctx context.Context, ol *objectLoad, r protocol.Ref, limit int64) {
	ol.once.Do(func() {
		defer close(ol.done)
		kind := envelope.KindChunk
		if r.Len > 0 {
			kind = envelope.KindPack
		} else {
			limit = chunkMax
		}
		if limit <= 0 || limit > packLimit {
			limit = packLimit
		}
		var into []byte
		if kind == envelope.KindPack {
			into = f.bufs.get()
			if into == nil {
				// Every pooled buffer takes a whole pack, so each is reused
				// for the next pack whatever its size: sized to the first
				// pack read, the pool dropped them one by one as garbage.
				into = make([]byte, 0, min(max(limit, f.e.opts.ChunkPackSize), readHint)+bytes.MinRead)
			}
			ol.pooled = true
		}
		ol.data, ol.err = f.loadInto(ctx, r.Obj, kind, limit, into)
	})
}

// bufPool keeps the buffers of chunk packs read, for the next ones: a
// fresh one per pack would have the collector let the heap grow to twice
// what the read-ahead holds. Safe for concurrent use.
type bufPool struct {
	mu   sync.Mutex
	free [][]byte
}

func (p *bufPool) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b
	}
	return nil
}

// put keeps b unless enough are kept already.
func (p *bufPool) put(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b != nil && len(p.free) < readAhead+1 {
		p.free = append(p.free, b[:0])
	}
}

// chunkOf is chunk r of the object holding it: a version 1 chunk object
// is the chunk; a chunk pack holds it at [Off, Off+Len), stored as is (the
// envelope compresses the pack).
func chunkOf(r protocol.Ref, obj []byte) ([]byte, error) {
	if r.Len == 0 {
		return obj, checkChunkSize(r, obj)
	}
	if r.Z || r.Len != r.Size || r.Off < 0 || r.Off > int64(len(obj)) || r.Len > int64(len(obj))-r.Off {
		return nil, fmt.Errorf("%w: chunk reference [%d,+%d) of %d bytes outside pack %s of %d bytes", protocol.ErrInvalid, r.Off, r.Len, r.Size, r.Obj, len(obj))
	}
	return obj[r.Off : r.Off+r.Len : r.Off+r.Len], nil
}

// errHashMismatch: the rebuilt file is not the one the manifest describes.
var errHashMismatch = errors.New("content does not match the manifest's hash")

// checkChunkRef refuses a chunk reference no pusher makes, before reading.
func checkChunkRef(r protocol.Ref) error {
	if r.Size <= 0 || r.Size > chunkMax {
		return fmt.Errorf("%w: chunk %s of %d bytes (chunks are at most %d)", protocol.ErrInvalid, r.Obj, r.Size, chunkMax)
	}
	return nil
}

// checkChunkSize checks a chunk object read against its reference.
func checkChunkSize(r protocol.Ref, obj []byte) error {
	if int64(len(obj)) != r.Size {
		return fmt.Errorf("%w: chunk %s holds %d bytes, manifest says %d", protocol.ErrInvalid, r.Obj, len(obj), r.Size)
	}
	return nil
}
