package engine

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	"github.com/zeebo/blake3"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/protocol"
)

// The new chunks of a big file travel in chunk packs (PROTOCOL.md §7):
// one object per chunk would cost every request three times per chunk
// (upload, download, delete), about 1,400 objects per GiB, which a relay
// with a per-request cost (WebDAV: ~10 ms each) cannot carry fast. A pack
// holds the new chunks of one file, in file order, up to chunkPackSize.
// A few packs go up at once while the next is cut and hashed, and a few are
// read ahead on pull, so memory stays bounded whatever the file's size.
const (
	chunkPackSize = 8 << 20
	uploadAhead   = 2
	// readAhead bounds the objects a pull reads ahead, readAheadBytes the
	// chunks ahead: four one-chunk objects (version 1), or a pack and a half
	// while one is consumed, so the next pack is already on its way when
	// one ends (RSS: each pack held is about 10 MiB). Measured on 4 × 256
	// MiB: one pack ahead pulled in 8.5–8.7 s over SFTP, 2.6 s over WebDAV;
	// a pack and a half 5.8–6.0 s and 2.2 s for 15 MB more; two packs 5.6–5.9
	// and 2.0 s, for 30–50 MB more.
	readAhead      = 4
	readAheadBytes = chunkPackSize + chunkPackSize/2
)

// chunkPack is the chunk pack being filled: the plaintext of its chunks one
// after the other, their hashes and sizes.
type chunkPack struct {
	buf    []byte
	hashes [][32]byte
	sizes  []int64
}

// id names a pack by its chunks: a push cut and resumed packs the same
// chunks the same way and finds its finished packs on the relay. The
// layout (offsets) follows from the chunks, so the same name is the same
// layout.
func (p *pusher) chunkPackID(pk *chunkPack) string {
	h := blake3.New()
	for _, s := range pk.hashes {
		h.Write(s[:])
	}
	return p.e.repo.ObjectID([]byte("chunk pack"), h.Sum(nil))
}

// packUploads runs the uploads of one big file's chunk packs, up to
// uploadAhead at a time, while the caller chunks and hashes what follows.
// Results are handled on the caller's goroutine (accounting, the resume
// record), so the pusher needs no lock; the first failure cancels the
// other uploads.
type packUploads struct {
	p        *pusher
	path     string
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan packUpload // buffered: an upload never waits to report
	running  int
	reserved int64 // quota reserved by the uploads running
	err      error // the first failure
}

// packBuffers are a push's chunk pack buffers, kept from file to file:
// fresh 10 MiB buffers for every pack would have the collector let the heap
// grow to twice what is in use.
type packBuffers struct {
	free [][]byte
	made int
}

type packUpload struct {
	id      string
	n       int64 // stored size
	reserve int64
	buf     []byte
	err     error
}

func (p *pusher) newPackUploads(ctx context.Context, path string) *packUploads {
	ctx, cancel := context.WithCancel(ctx)
	return &packUploads{p: p, path: path, ctx: ctx, cancel: cancel, done: make(chan packUpload, uploadAhead)}
}

// buffer returns an empty pack buffer. There are at most uploadAhead+1: one
// being filled while uploadAhead go up.
func (u *packUploads) buffer() ([]byte, error) {
	bufs := &u.p.packBufs
	for len(bufs.free) == 0 && bufs.made > uploadAhead && u.running > 0 {
		if err := u.handle(<-u.done); err != nil {
			return nil, err
		}
	}
	if n := len(bufs.free); n > 0 {
		b := bufs.free[n-1]
		bufs.free = bufs.free[:n-1]
		return b[:0], nil
	}
	bufs.made++
	// A pack is sent before a chunk would take it past ChunkPackSize, so
	// it is never bigger, unless one chunk is (a small quota's packs).
	return make([]byte, 0, max(u.p.e.opts.ChunkPackSize, chunkMax)), nil
}

// release gives back a buffer no upload took.
func (u *packUploads) release(buf []byte) {
	if buf != nil {
		u.p.packBufs.free = append(u.p.packBufs.free, buf)
	}
}

// start uploads the pack in buf; buf is the uploader's until the upload
// ends. reserve is the quota the upload may take. It waits while
// uploadAhead uploads are running.
func (u *packUploads) start(id string, buf []byte, reserve int64) error {
	for u.running >= uploadAhead {
		if err := u.handle(<-u.done); err != nil {
			return err
		}
	}
	if u.err != nil {
		return u.err
	}
	u.running++
	u.reserved += reserve
	e := u.p.e
	go func() {
		// The envelope compresses packs that compress.
		n, err := e.repo.PutStream(u.ctx, envelope.KindPack, protocol.DataName(e.cid, id), func(w io.Writer) error {
			_, err := w.Write(buf)
			return err
		})
		u.done <- packUpload{id: id, n: n, reserve: reserve, buf: buf, err: err}
	}()
	return nil
}

// handle takes in one finished upload: counted and recorded as uploaded
// (so a cut push resumes after it), or its failure kept. An upload that
// succeeds after another failed is still recorded.
func (u *packUploads) handle(r packUpload) error {
	u.running--
	u.reserved -= r.reserve
	u.release(r.buf)
	if r.err != nil {
		if u.err == nil {
			u.err = fmt.Errorf("upload the chunks of %s: %w", u.path, r.err)
			u.cancel()
		}
		return u.err
	}
	u.p.uploaded(r.id, r.n)
	if err := u.p.e.noteChunk(r.id, r.n); err != nil && u.err == nil {
		u.err = err
		u.cancel()
	}
	return u.err
}

// poll handles the uploads that have ended, without waiting.
func (u *packUploads) poll() error {
	for u.running > 0 {
		select {
		case r := <-u.done:
			if err := u.handle(r); err != nil {
				return err
			}
		default:
			return u.err
		}
	}
	return u.err
}

// wait lets every upload end and reports the first failure.
func (u *packUploads) wait() error {
	for u.running > 0 {
		u.handle(<-u.done)
	}
	return u.err
}

// room makes sure the quota judgement of an upload of n bytes sees every
// earlier upload's real size: when the uploads running might cross the
// quota with it, it waits for them. The caller then asks p.fits as the
// one-at-a-time push did, and the quota stops the file at the same pack.
func (u *packUploads) room(n int64) error {
	q := u.p.e.opts.Quota
	if q > 0 && u.running > 0 && u.p.usage+u.reserved+n > q {
		return u.wait()
	}
	return u.err
}

// close cancels the uploads still running and waits for them: no goroutine
// outlives addBig. Those that finished anyway are still recorded, so the
// next round does not send them again.
func (u *packUploads) close() {
	u.cancel()
	for u.running > 0 {
		_ = u.handle(<-u.done)
	}
}

// fileReader yields a file's content from its references, taking chunks
// from the local base version where it has them, and fails at EOF when the
// whole does not hash to want: localfs then leaves the target untouched.
// A chunked file's next chunks are fetched at once while the consumer
// writes the current one, up to readAhead objects and readAheadBytes; a
// chunk pack is read once for all its chunks. Close stops them.
type fileReader struct {
	ctx     context.Context
	f       *fetcher
	refs    []protocol.Ref
	chunked bool
	local   func(hash string) []byte // chunk from the local base, nil if absent
	want    string
	h       *blake3.Hasher
	cur     *bytes.Reader
	i       int   // next reference to consume
	err     error // sticky: once failed, always failed

	// Read-ahead of chunked files.
	next       int           // next reference to start
	ahead      []*chunkFetch // started, for refs i..next-1, in order
	aheadObjs  map[string]int
	aheadBytes int64
	packs      map[string]*objectLoad // objects being read or read, shared by their chunks
	uses       map[string]int         // references left to consume, per object
	retired    []*objectLoad          // no chunk left to take from them
	cancel     context.CancelFunc
	wctx       context.Context
	wg         sync.WaitGroup
}

// chunkFetch is one chunk being read; its fields are set before done closes.
type chunkFetch struct {
	done chan struct{}
	data []byte
	obj  *objectLoad // the object it came from; nil: a local copy
	err  error
}

// objectLoad is one data object read whole; data and err are set before
// done closes. counted is the consumer's.
type objectLoad struct {
	once    sync.Once
	done    chan struct{}
	data    []byte
	err     error
	pooled  bool // data is a buffer of the fetcher's pool
	counted bool
}

func newFileReader(ctx context.Context, f *fetcher, refs []protocol.Ref, chunked bool, want string) *fileReader {
	return &fileReader{ctx: ctx, f: f, refs: refs, chunked: chunked, want: want, h: blake3.New()}
}

func (r *fileReader) Read(p []byte) (int, error) {
	for r.cur == nil || r.cur.Len() == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.i == len(r.refs) {
			r.Close()
			if hex.EncodeToString(r.h.Sum(nil)) != r.want {
				r.err = errHashMismatch
			} else {
				r.err = io.EOF
			}
			return 0, r.err
		}
		data, err := r.nextData()
		if err != nil {
			r.err = err
			r.Close()
			return 0, err
		}
		r.h.Write(data)
		r.cur = bytes.NewReader(data)
	}
	return r.cur.Read(p)
}

// nextData is the plaintext of reference i, in order.
func (r *fileReader) nextData() ([]byte, error) {
	ref := r.refs[r.i]
	if !r.chunked {
		r.i++
		return r.f.blob(r.ctx, ref, false)
	}
	if err := r.ctx.Err(); err != nil {
		return nil, err // a cancelled round writes no file, even from what is read ahead
	}
	r.recycle()
	r.fill()
	cf := r.ahead[0]
	r.ahead = r.ahead[1:]
	r.i++
	if r.aheadObjs[ref.Obj]--; r.aheadObjs[ref.Obj] == 0 {
		delete(r.aheadObjs, ref.Obj)
	}
	r.aheadBytes -= ref.Size
	<-cf.done
	// The object stays at hand while later chunks need it. The map is the
	// consumer's: fetches hold their own pointer to the load. Its buffer
	// goes back to the pool once the chunk returned now is consumed.
	if r.uses[ref.Obj]--; r.uses[ref.Obj] <= 0 {
		if ol := r.packs[ref.Obj]; ol != nil {
			r.retired = append(r.retired, ol)
		}
		delete(r.packs, ref.Obj)
	}
	if cf.err != nil {
		return nil, cf.err
	}
	if ol := cf.obj; ol != nil && !ol.counted {
		ol.counted = true
		r.f.count(int64(len(ol.data)))
	}
	return cf.data, nil
}

// fill starts the fetches of the chunks ahead, within the read-ahead
// bounds; the chunk to consume next always starts.
func (r *fileReader) fill() {
	if r.wctx == nil {
		r.wctx, r.cancel = context.WithCancel(r.ctx)
		r.aheadObjs, r.packs, r.uses = map[string]int{}, map[string]*objectLoad{}, map[string]int{}
		for _, ref := range r.refs {
			r.uses[ref.Obj]++
		}
	}
	for r.next < len(r.refs) {
		ref := r.refs[r.next]
		_, open := r.aheadObjs[ref.Obj]
		if r.next > r.i && ((!open && len(r.aheadObjs) >= readAhead) || r.aheadBytes+ref.Size > readAheadBytes) {
			return
		}
		r.next++
		r.aheadObjs[ref.Obj]++
		r.aheadBytes += ref.Size
		ol := r.packs[ref.Obj]
		if ol == nil {
			ol = &objectLoad{done: make(chan struct{})}
			r.packs[ref.Obj] = ol
		}
		limit := r.f.packEnd[ref.Obj]
		cf := &chunkFetch{done: make(chan struct{})}
		r.ahead = append(r.ahead, cf)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer close(cf.done)
			cf.data, cf.obj, cf.err = r.fetch(ref, ol, limit)
		}()
	}
}

// fetch reads one chunk, from a local copy if there is one, else from the
// object on the relay, which the first chunk to need it reads for all.
// It runs on its own goroutine: it touches no reader or fetcher state but
// its object's load.
func (r *fileReader) fetch(ref protocol.Ref, ol *objectLoad, limit int64) (data []byte, from *objectLoad, err error) {
	if r.local != nil {
		if data := r.local(ref.Hash); data != nil {
			return data, nil, nil
		}
	}
	if err := checkChunkRef(ref); err != nil {
		return nil, nil, err
	}
	r.f.loadOnce(r.wctx, ol, ref, limit)
	<-ol.done
	if ol.err != nil {
		return nil, nil, ol.err
	}
	data, err = chunkOf(ref, ol.data)
	return data, ol, err
}

// Close stops the read-ahead and waits for it: nothing outlives the reader.
// It may be called more than once.
func (r *fileReader) Close() error {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	r.recycle()
	r.ahead = nil
	r.packs = nil
	return nil
}

// recycle gives the buffers of retired objects back to the pool. Every
// fetch of a retired object has ended (each of its chunks was consumed),
// and the consumer has read the last chunk it returned.
func (r *fileReader) recycle() {
	for _, ol := range r.retired {
		if ol.pooled && r.f.bufs != nil {
			<-ol.done
			r.f.bufs.put(ol.data)
		}
	}
	r.retired = r.retired[:0]
}
