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

// Big files move several chunk objects at a time: one object per request
// leaves the link idle during every round trip and every seal, and a
// high-latency relay (WebDAV: several requests per object) idle most of the
// time. Each side keeps at most this many chunks in flight, so memory stays
// bounded at a few chunkMax buffers whatever the file's size.
const (
	uploadAhead = 4
	readAhead   = 4
)

// chunkUploads runs the uploads of one big file's chunks, up to uploadAhead
// at a time, while the caller chunks and hashes what follows. Results are
// handled on the caller's goroutine (accounting, the resume record), so the
// pusher needs no lock; the first failure cancels the other uploads.
type chunkUploads struct {
	p        *pusher
	path     string
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan chunkUpload // buffered: an upload never waits to report
	running  int
	reserved int64    // quota reserved by the uploads running
	free     [][]byte // chunk buffers not in use
	made     int
	err      error // the first failure
}

type chunkUpload struct {
	id      string
	n       int64 // stored size
	reserve int64
	buf     []byte
	err     error
}

func (p *pusher) newChunkUploads(ctx context.Context, path string) *chunkUploads {
	ctx, cancel := context.WithCancel(ctx)
	return &chunkUploads{p: p, path: path, ctx: ctx, cancel: cancel, done: make(chan chunkUpload, uploadAhead)}
}

// buffer returns a free chunk buffer. There are at most uploadAhead+1: one
// being filled while uploadAhead go up.
func (u *chunkUploads) buffer() ([]byte, error) {
	for len(u.free) == 0 && u.made > uploadAhead && u.running > 0 {
		if err := u.handle(<-u.done); err != nil {
			return nil, err
		}
	}
	if n := len(u.free); n > 0 {
		b := u.free[n-1]
		u.free = u.free[:n-1]
		return b, nil
	}
	u.made++
	return make([]byte, chunkMax), nil
}

// release gives back a buffer no upload took.
func (u *chunkUploads) release(buf []byte) { u.free = append(u.free, buf) }

// start uploads the chunk data, which lies in buf; buf is the uploader's
// until the upload ends. reserve is the quota the upload may take. It
// waits while uploadAhead uploads are running.
func (u *chunkUploads) start(id string, data, buf []byte, reserve int64) error {
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
		// The envelope compresses chunks that compress.
		n, err := e.repo.PutStream(u.ctx, envelope.KindChunk, protocol.DataName(e.cid, id), func(w io.Writer) error {
			_, err := w.Write(data)
			return err
		})
		u.done <- chunkUpload{id: id, n: n, reserve: reserve, buf: buf, err: err}
	}()
	return nil
}

// handle takes in one finished upload: counted and recorded as uploaded
// (so a cut push resumes after it), or its failure kept. An upload that
// succeeds after another failed is still recorded.
func (u *chunkUploads) handle(r chunkUpload) error {
	u.running--
	u.reserved -= r.reserve
	u.free = append(u.free, r.buf)
	if r.err != nil {
		if u.err == nil {
			u.err = fmt.Errorf("upload a chunk of %s: %w", u.path, r.err)
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
func (u *chunkUploads) poll() error {
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
func (u *chunkUploads) wait() error {
	for u.running > 0 {
		u.handle(<-u.done)
	}
	return u.err
}

// room makes sure the quota judgement of an upload of n bytes sees every
// earlier upload's real size: when the uploads running might cross the
// quota with it, it waits for them. The caller then asks p.fits as the
// one-at-a-time push did, and the quota stops the file at the same chunk.
func (u *chunkUploads) room(n int64) error {
	q := u.p.e.opts.Quota
	if q > 0 && u.running > 0 && u.p.usage+u.reserved+n > q {
		return u.wait()
	}
	return u.err
}

// close cancels the uploads still running and waits for them: no goroutine
// outlives addBig. Those that finished anyway are still recorded, so the
// next round does not send them again.
func (u *chunkUploads) close() {
	u.cancel()
	for u.running > 0 {
		_ = u.handle(<-u.done)
	}
}

// fileReader yields a file's content from its references, taking chunks
// from the local base version where it has them, and fails at EOF when the
// whole does not hash to want: localfs then leaves the target untouched.
// A chunked file's next readAhead chunks are fetched at once while the
// consumer writes the current one; Close stops them.
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
	next   int           // next reference to start
	ahead  []*chunkFetch // started, for refs i..next-1, in order
	last   *chunkFetch   // the one consumed last (a repeated chunk reuses it)
	cancel context.CancelFunc
	wctx   context.Context
	wg     sync.WaitGroup
}

// chunkFetch is one chunk being read; its fields are set before done closes.
type chunkFetch struct {
	obj     string
	done    chan struct{}
	data    []byte
	remote  bool // read from the relay, not from a local copy
	counted bool
	err     error
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
	r.fill()
	cf := r.ahead[0]
	r.ahead = r.ahead[1:]
	r.i++
	<-cf.done
	if cf.err != nil {
		return nil, cf.err
	}
	if cf.remote && !cf.counted {
		cf.counted = true
		r.f.count(int64(len(cf.data)))
	}
	r.last = cf
	return cf.data, nil
}

// fill starts the fetches of the next readAhead chunks not started yet.
// A chunk repeated close by (a run of zeros) is fetched once.
func (r *fileReader) fill() {
	if r.wctx == nil {
		r.wctx, r.cancel = context.WithCancel(r.ctx)
	}
	for r.next < len(r.refs) && r.next < r.i+readAhead {
		ref := r.refs[r.next]
		r.next++
		if cf := r.started(ref.Obj); cf != nil {
			r.ahead = append(r.ahead, cf)
			continue
		}
		cf := &chunkFetch{obj: ref.Obj, done: make(chan struct{})}
		r.ahead = append(r.ahead, cf)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer close(cf.done)
			cf.data, cf.remote, cf.err = r.fetch(ref)
		}()
	}
}

// started finds a fetch of obj still at hand. Its err is read only when it
// is done (a failed one is not shared: it fails in its own place).
func (r *fileReader) started(obj string) *chunkFetch {
	match := func(cf *chunkFetch) bool {
		if cf == nil || cf.obj != obj {
			return false
		}
		select {
		case <-cf.done:
			return cf.err == nil
		default:
			return true
		}
	}
	for _, cf := range r.ahead {
		if match(cf) {
			return cf
		}
	}
	if match(r.last) {
		return r.last
	}
	return nil
}

// fetch reads one chunk, from a local copy if there is one, else from the
// relay. It runs on its own goroutine: it touches no reader or fetcher state.
func (r *fileReader) fetch(ref protocol.Ref) (data []byte, remote bool, err error) {
	if r.local != nil {
		if data := r.local(ref.Hash); data != nil {
			return data, false, nil
		}
	}
	if err := checkChunkRef(ref); err != nil {
		return nil, false, err
	}
	data, err = r.f.load(r.wctx, ref.Obj, envelope.KindChunk, chunkMax)
	if err != nil {
		return nil, false, err
	}
	return data, true, checkChunkSize(ref, data)
}

// Close stops the read-ahead and waits for it: nothing outlives the reader.
// It may be called more than once.
func (r *fileReader) Close() error {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	r.ahead = nil
	return nil
}
