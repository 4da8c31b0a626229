package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/cache"
	"github.com/rclone/rclone/fs/fspath"
	"github.com/rclone/rclone/fs/operations"
	"github.com/rclone/rclone/fs/walk"
)

// Relay is one relay folder: a backend rooted at the spec's path. Names given
// to its methods are relative to that root. It is safe for concurrent use.
//
// Every call runs under a deadline (WithTimeout, WithDataTimeout) and is
// retried on transient failures with bounded exponential backoff
// (WithRetries, WithBackoff). rclone's own low-level retries are set to 1 for
// the relay's calls, so the two never multiply.
type Relay struct {
	spec     relaySpec
	cfg      openConfig
	f        fs.Fs
	cfgCtx   context.Context // carries the relay's rclone config into every call
	condCtx  context.Context // cfgCtx plus "If-None-Match: *" on uploads (s3)
	features Features
	slowHash bool

	// listed holds the objects of the folders KeepListed listed, by name:
	// Open takes them without a lookup request.
	listedMu sync.Mutex
	listed   map[string]fs.Object

	closeOnce sync.Once
	closed    atomic.Bool
}

// Open opens a relay from a spec: "remote:path" from rclone.conf, an inline
// remote ":type,opt=value:path" (rclone's connection-string syntax), or a
// local directory ("/abs/dir", "./rel", "C:\dir" on Windows). Some backends
// (sftp, ftp) connect here; others only on the first call. Close releases it.
func Open(ctx context.Context, spec string, o ...OpenOption) (*Relay, error) {
	const op = "open relay"
	if err := ensureInit(); err != nil {
		return nil, &Error{Op: op, Kind: KindFatal, Err: err}
	}
	rs, err := parseSpec(spec)
	if err != nil {
		return nil, &Error{Op: op, Kind: KindFatal, Err: err}
	}
	cfg := defaultOpenConfig()
	for _, opt := range o {
		opt(&cfg)
	}
	cfgCtx, ci := fs.AddConfig(context.Background())
	ci.LowLevelRetries = 1     // escale retries; rclone's pacer must not multiply them
	ci.UseServerModTime = true // mtime from the listing, not a HEAD per object (s3, swift)
	ci.AskPassword = false
	// rclone's connection idle timeout (5 min by default) must not outlast
	// escale's own deadline: some backends (sftp) ignore the context once a
	// request is in flight, and only an idle connection times out.
	ci.Timeout = fs.Duration(cfg.timeout)
	ci.ConnectTimeout = fs.Duration(min(cfg.timeout, time.Minute))
	r := &Relay{spec: rs, cfg: cfg, cfgCtx: cfgCtx, condCtx: cfgCtx}

	err = r.do(ctx, call{op: op, name: rs.display, timeout: cfg.timeout}, func(actx context.Context) error {
		f, err := newFs(actx, rs.fsString)
		switch {
		case errors.Is(err, errPointsToFile):
			return &Error{Op: op, Name: rs.display, Kind: KindFatal, Err: err}
		case errors.Is(err, fs.ErrorNotFoundInConfigFile):
			return &Error{Op: op, Name: rs.display, Kind: KindFatal,
				Err: fmt.Errorf("remote %q is not defined in rclone config file %s: check the name with `rclone listremotes --config %[2]s`, add it with `rclone config --config %[2]s`, or set rclone_config to the file that has it", rs.remote, configFileName())}
		case err != nil:
			return err
		}
		r.f = f
		return nil
	})
	if err != nil {
		return nil, err
	}
	cache.Pin(r.f)
	r.features = featuresOf(r.f, ci.UseServerModTime)
	r.slowHash = r.f.Features().SlowHash
	if r.features.ConditionalCreate {
		var cci *fs.ConfigInfo
		r.condCtx, cci = fs.AddConfig(cfgCtx)
		cci.UploadHeaders = append(slices.Clone(ci.UploadHeaders), &fs.HTTPOption{Key: "If-None-Match", Value: "*"})
	}
	return r, nil
}

var errPointsToFile = errors.New("the relay spec points to a file; give the folder that holds the relay")

// isFileError carries the parent backend rclone returns with fs.ErrorIsFile.
type isFileError struct{ parent fs.Fs }

func (isFileError) Error() string { return fs.ErrorIsFile.Error() }

// newFs gets the relay's backend. A relay must be a folder, so rclone's
// "that is a file" answer is checked: s3 gives it as a guess when it cannot
// reach the server, and the check turns that into the real (unreachable)
// error, or opens the folder when the guess was wrong.
func newFs(ctx context.Context, fsString string) (fs.Fs, error) {
	f, err := getFs(ctx, fsString)
	var isFile isFileError
	if !errors.As(err, &isFile) {
		return f, err
	}
	defer shutdown(isFile.parent)
	_, leaf, splitErr := fspath.Split(fsString)
	if splitErr != nil {
		return nil, splitErr
	}
	_, err = isFile.parent.NewObject(ctx, leaf)
	switch {
	case err == nil:
		return nil, errPointsToFile
	case !isNotFound(objectError(err)):
		return nil, err
	}
	// A trailing slash tells rclone the path is a folder.
	return getFs(ctx, fsString+"/")
}

// getFs gets the backend from rclone's cache: shared by relays of the same
// spec, pinned while one is open, shut down when unused. Creation is detached
// from ctx (a backend outlives the call that made it), so ctx is enforced
// here. A "that is a file" answer is not cached: rclone would remember the
// spec as a file for the life of the process.
func getFs(ctx context.Context, fsString string) (fs.Fs, error) {
	type result struct {
		f   fs.Fs
		err error
	}
	done := make(chan result, 1)
	cctx := fs.CopyConfig(context.Background(), ctx)
	go func() {
		f, err := cache.GetFn(cctx, fsString, func(ctx context.Context, s string) (fs.Fs, error) {
			f, err := fs.NewFs(ctx, s)
			if errors.Is(err, fs.ErrorIsFile) {
				return nil, isFileError{parent: f}
			}
			return f, err
		})
		done <- result{f, err}
	}()
	select {
	case res := <-done:
		return res.f, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func shutdown(f fs.Fs) {
	if s, ok := f.(fs.Shutdowner); ok {
		_ = s.Shutdown(context.Background())
	}
}

// String is the spec with any secrets redacted.
func (r *Relay) String() string { return r.spec.display }

// Features says what the backend can do.
func (r *Relay) Features() Features {
	f := r.features
	f.Hashes = slices.Clone(f.Hashes)
	return f
}

// Close releases the relay; calls after Close fail.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		cache.Unpin(r.f)
	})
	return nil
}

var errClosed = errors.New("relay is closed")

// check refuses calls on a closed relay and names that break the rules.
func (r *Relay) check(op string, dirOK bool, names ...string) error {
	if r.closed.Load() {
		return &Error{Op: op, Name: strings.Join(names, " -> "), Kind: KindFatal, Err: errClosed}
	}
	for _, name := range names {
		if err := checkName(name, dirOK); err != nil {
			return &Error{Op: op, Name: name, Kind: KindFatal, Err: err}
		}
	}
	return nil
}

// Put uploads body as name, replacing any object of that name and creating
// parent folders as needed. size is the body's length, or -1 when unknown:
// the body is then streamed (rclone's Rcat), never held whole in memory.
//
// A failed upload is retried only when body is an io.ReadSeeker (it is sought
// back to where it started); any other body cannot be replayed, so its first
// failure is returned, classified, without retry. A body that fails to read,
// or whose length differs from size, gives a KindFatal error.
func (r *Relay) Put(ctx context.Context, name string, body io.Reader, size int64) (Entry, error) {
	return r.put(ctx, "put", name, body, size, false)
}

// PutIfAbsent is Put that fails with KindExists when name already exists.
// It is atomic where Features().ConditionalCreate (S3's "If-None-Match: *",
// on top of a check); elsewhere it is check-then-put, and two clients racing
// can both succeed. On S3, an upload that succeeded but whose reply was lost
// is retried and then reports KindExists: callers that need certainty re-read.
func (r *Relay) PutIfAbsent(ctx context.Context, name string, body io.Reader, size int64) (Entry, error) {
	const op = "put if absent"
	if err := r.check(op, false, name); err != nil {
		return Entry{}, err
	}
	_, err := r.Stat(ctx, name)
	switch {
	case err == nil:
		return Entry{}, &Error{Op: op, Name: name, Kind: KindExists, Err: errors.New("the name is taken")}
	case KindOf(err) != KindNotFound:
		return Entry{}, relabel(op, err)
	}
	return r.put(ctx, op, name, body, size, true)
}

func (r *Relay) put(ctx context.Context, op, name string, body io.Reader, size int64, ifAbsent bool) (Entry, error) {
	if err := r.check(op, false, name); err != nil {
		return Entry{}, err
	}
	if body == nil || size < -1 {
		return Entry{}, &Error{Op: op, Name: name, Kind: KindFatal,
			Err: fmt.Errorf("invalid upload: body %v, size %d (size is the length, or -1 when unknown)", body != nil, size)}
	}
	r.unlist(name)
	rewind := rewinder(body)
	c := call{op: op, name: name, timeout: r.cfg.dataTimeout, canRetry: func() bool { return rewind != nil }}
	if ifAbsent {
		c.cfgCtx = r.condCtx
	}
	var entry Entry
	tries := 0
	err := r.do(ctx, c, func(actx context.Context) error {
		if tries++; tries > 1 {
			if err := rewind(); err != nil {
				return &Error{Op: op, Name: name, Kind: KindFatal, Err: fmt.Errorf("rewinding the data to upload: %w", err)}
			}
		}
		guard := &bodyGuard{r: body, size: size}
		// No checksum of the upload: rclone would hash every byte (MD5 on
		// most backends, a third of a big push's CPU) to compare with the
		// server's, and escale's envelope already authenticates every
		// byte when it is read back.
		uctx, ci := fs.AddConfig(actx)
		ci.IgnoreChecksum, ci.SizeOnly = true, true // the size is still checked
		// No read-ahead either: the body is a pipe from the sealer or bytes
		// in memory, and rclone's (--buffer-size, 16 MiB per upload) would
		// only copy it, and hold up to 16 MiB of memory per upload.
		ci.BufferSize = 0
		obj, err := operations.RcatSize(uctx, r.f, name, io.NopCloser(guard), size, time.Now(), nil)
		if guard.err != nil {
			// The caller's data failed, not the storage: never retry that.
			return &Error{Op: op, Name: name, Kind: KindFatal, Err: guard.err}
		}
		if err != nil {
			return err
		}
		entry = r.entry(actx, obj)
		return nil
	})
	return entry, err
}

// rewinder returns a function that seeks body back to where it is now, or
// nil when body cannot seek.
func rewinder(body io.Reader) func() error {
	s, ok := body.(io.Seeker)
	if !ok {
		return nil
	}
	start, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil // a pipe or a terminal claims Seek but cannot
	}
	return func() error {
		_, err := s.Seek(start, io.SeekStart)
		return err
	}
}

// bodyGuard tells the caller's failures (a read error, a length that is not
// the declared size) from the storage's.
type bodyGuard struct {
	r       io.Reader
	size, n int64
	err     error
}

func (g *bodyGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	switch {
	case g.size >= 0 && g.n > g.size:
		g.err = fmt.Errorf("the data to upload is longer than its declared size %d", g.size)
	case err == io.EOF && g.size >= 0 && g.n < g.size:
		g.err = fmt.Errorf("the data to upload ended after %d of its declared %d bytes", g.n, g.size)
	case err != nil && err != io.EOF:
		g.err = fmt.Errorf("reading the data to upload: %w", err)
	}
	if g.err != nil {
		return n, g.err
	}
	return n, err
}

// Open reads the byte range [offset, offset+length) of name; length -1 reads
// to the end. A range past the end is cut short (an offset at or beyond the
// end reads nothing), as ReadAt would. A read that breaks mid-stream is
// resumed where it stopped (rclone's ReOpen, up to the relay's tries). The
// data deadline covers the reader's whole life; Close it.
func (r *Relay) Open(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	const op = "open"
	if err := r.check(op, false, name); err != nil {
		return nil, err
	}
	if offset < 0 || length < -1 {
		return nil, &Error{Op: op, Name: name, Kind: KindFatal,
			Err: fmt.Errorf("invalid range: offset %d, length %d (length -1 reads to the end)", offset, length)}
	}
	rctx, cancel := context.WithTimeout(fs.CopyConfig(ctx, r.cfgCtx), r.cfg.dataTimeout)
	var rc io.ReadCloser
	err := r.do(rctx, call{op: op, name: name, timeout: r.cfg.dataTimeout}, func(actx context.Context) error {
		obj := r.listedObject(name)
		if obj == nil {
			var err error
			if obj, err = r.f.NewObject(actx, name); err != nil {
				return objectError(err)
			}
		}
		opts, empty := rangeOptions(obj.Size(), offset, length)
		if empty {
			rc = io.NopCloser(strings.NewReader(""))
			return nil
		}
		// The stream lives past this attempt: it gets the reader's context.
		h, err := operations.NewReOpen(rctx, obj, r.cfg.tries, opts...)
		if err != nil {
			return err
		}
		rc = h
		return nil
	})
	if err != nil {
		cancel()
		return nil, err
	}
	return &reader{rc: rc, ctx: rctx, cancel: cancel, relay: r, name: name}, nil
}

// KeepListed lists dir and keeps its objects until ForgetListed, so that
// Open of one of them makes no lookup request first (a PROPFIND on WebDAV,
// a HEAD on S3, a stat over SFTP): a pull that reads a hundred chunk packs
// of one client lists their folder once instead. Only for objects that are
// never rewritten in place (their size is taken from the listing); an
// object written, moved or deleted through this relay is dropped from it.
// It returns how many objects it keeps.
func (r *Relay) KeepListed(ctx context.Context, dir string) (int, error) {
	const op = "list"
	if err := r.check(op, true, dir); err != nil {
		return 0, err
	}
	var objs []fs.Object
	err := r.do(ctx, call{op: op, name: dir, timeout: r.cfg.timeout}, func(actx context.Context) error {
		entries, err := r.f.List(actx, dir)
		if errors.Is(err, fs.ErrorDirNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		objs = objs[:0]
		for _, e := range entries {
			if o, ok := e.(fs.Object); ok {
				objs = append(objs, o)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	r.listedMu.Lock()
	defer r.listedMu.Unlock()
	if r.listed == nil {
		r.listed = make(map[string]fs.Object, len(objs))
	}
	for _, o := range objs {
		r.listed[o.Remote()] = o
	}
	return len(objs), nil
}

// ForgetListed drops what KeepListed kept.
func (r *Relay) ForgetListed() {
	r.listedMu.Lock()
	r.listed = nil
	r.listedMu.Unlock()
}

func (r *Relay) listedObject(name string) fs.Object {
	r.listedMu.Lock()
	defer r.listedMu.Unlock()
	return r.listed[name]
}

// unlist drops names from what KeepListed kept: they change here.
func (r *Relay) unlist(names ...string) {
	r.listedMu.Lock()
	defer r.listedMu.Unlock()
	for _, n := range names {
		delete(r.listed, n)
	}
}

// rangeOptions turns [offset, offset+length) into rclone's inclusive range,
// cut to the object's size when known.
func rangeOptions(size, offset, length int64) (opts []fs.OpenOption, empty bool) {
	if length == 0 || (size >= 0 && offset >= size) {
		return nil, true
	}
	end := int64(-1)
	if length > 0 {
		end = offset + length - 1
	}
	if size >= 0 && (end < 0 || end > size-1) {
		end = size - 1
	}
	if offset == 0 && (end < 0 || end == size-1) {
		return nil, false // the whole object
	}
	return []fs.OpenOption{&fs.RangeOption{Start: offset, End: end}}, false
}

// reader classifies read errors and ends the deadline on Close. It checks
// the deadline itself: some backends (local files) never look at it.
type reader struct {
	rc     io.ReadCloser
	ctx    context.Context
	cancel context.CancelFunc
	relay  *Relay
	name   string
}

func (x *reader) Read(p []byte) (int, error) {
	if err := x.ctx.Err(); err != nil {
		return 0, x.relay.wrap("read", x.name, err)
	}
	n, err := x.rc.Read(p)
	if err != nil && err != io.EOF {
		err = x.relay.wrap("read", x.name, err)
	}
	return n, err
}

func (x *reader) Close() error {
	err := x.rc.Close()
	x.cancel()
	return x.relay.wrap("close", x.name, err)
}

// objectError makes "that is a folder" a not-found error for object calls.
func objectError(err error) error {
	if errors.Is(err, fs.ErrorIsDir) || errors.Is(err, fs.ErrorNotAFile) {
		return fmt.Errorf("%w: %w", fs.ErrorObjectNotFound, err)
	}
	return err
}

// relabel gives a storage error from an inner call the outer call's Op.
func relabel(op string, err error) error {
	var se *Error
	if errors.As(err, &se) {
		return &Error{Op: op, Name: se.Name, Kind: se.Kind, Err: se.Err}
	}
	return err
}

func isNotFound(err error) bool { return err != nil && classify(err) == KindNotFound }

// Stat describes the object name; KindNotFound if it does not exist.
func (r *Relay) Stat(ctx context.Context, name string) (Entry, error) {
	const op = "stat"
	if err := r.check(op, false, name); err != nil {
		return Entry{}, err
	}
	var e Entry
	err := r.do(ctx, call{op: op, name: name, timeout: r.cfg.timeout}, func(actx context.Context) error {
		obj, err := r.f.NewObject(actx, name)
		if err != nil {
			return objectError(err)
		}
		e = r.entry(actx, obj)
		return nil
	})
	return e, err
}

// entry describes obj with what the backend has at hand: hashes only when
// they cost no extra request (on local disks and sftp they would be computed
// by reading the whole object).
func (r *Relay) entry(ctx context.Context, obj fs.Object) Entry {
	e := Entry{Name: obj.Remote(), Size: obj.Size(), ModTime: obj.ModTime(ctx)}
	if !r.slowHash {
		for _, t := range r.f.Hashes().Array() {
			if v, err := obj.Hash(ctx, t); err == nil && v != "" {
				if e.Hashes == nil {
					e.Hashes = make(map[string]string)
				}
				e.Hashes[t.String()] = v
			}
		}
	}
	return e
}

// List lists one level of dir ("" is the relay root), objects and folders,
// sorted by name. A missing dir is an empty list, not an error.
func (r *Relay) List(ctx context.Context, dir string) ([]Entry, error) {
	const op = "list"
	if err := r.check(op, true, dir); err != nil {
		return nil, err
	}
	var out []Entry
	err := r.do(ctx, call{op: op, name: dir, timeout: r.cfg.timeout}, func(actx context.Context) error {
		entries, err := r.f.List(actx, dir)
		if errors.Is(err, fs.ErrorDirNotFound) {
			out = []Entry{}
			return nil
		}
		if err != nil {
			return err
		}
		out = make([]Entry, 0, len(entries))
		for _, e := range entries {
			switch x := e.(type) {
			case fs.Object:
				out = append(out, r.entry(actx, x))
			case fs.Directory:
				out = append(out, Entry{Name: x.Remote(), Size: -1, ModTime: x.ModTime(actx), IsDir: true})
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

// Walk calls fn for every object under dir ("" is the relay root), at any
// depth, in no particular order, never concurrently. A missing dir walks
// nothing. fn's error stops the walk and is returned (wrapped; errors.Is
// sees it). A walk that fails before fn was called is retried; after, it is not.
func (r *Relay) Walk(ctx context.Context, dir string, fn func(Entry) error) error {
	const op = "walk"
	if err := r.check(op, true, dir); err != nil {
		return err
	}
	var (
		mu        sync.Mutex
		delivered bool
		fnErr     error
	)
	visit := func(ctx context.Context, entries fs.DirEntries) error {
		mu.Lock()
		defer mu.Unlock()
		if fnErr != nil {
			return fnErr
		}
		for _, e := range entries {
			obj, ok := e.(fs.Object)
			if !ok {
				continue
			}
			delivered = true
			if err := fn(r.entry(ctx, obj)); err != nil {
				fnErr = err
				return err
			}
		}
		return nil
	}
	c := call{op: op, name: dir, timeout: r.cfg.dataTimeout, canRetry: func() bool { return !delivered }}
	return r.do(ctx, c, func(actx context.Context) error {
		// Cancelling stops rclone's walkers quietly when fn fails; an error
		// returned to them would be logged as a listing failure.
		wctx, stop := context.WithCancel(actx)
		defer stop()
		visitOrStop := func(entries fs.DirEntries) error {
			if err := visit(wctx, entries); err != nil {
				stop()
				return walk.ErrorSkipDir
			}
			return nil
		}
		var err error
		if r.f.Features().ListR != nil {
			// One streamed recursive listing (object stores): O(1) requests per page.
			err = walk.ListR(wctx, r.f, dir, true, -1, walk.ListObjects, visitOrStop)
		} else {
			err = walk.Walk(wctx, r.f, dir, true, -1, func(path string, entries fs.DirEntries, err error) error {
				if errors.Is(err, fs.ErrorDirNotFound) {
					return nil // missing root, or a folder removed while we walk
				}
				if err != nil {
					return err
				}
				return visitOrStop(entries)
			})
		}
		if fnErr != nil {
			return &Error{Op: op, Name: dir, Kind: KindOf(fnErr), Err: fnErr}
		}
		if errors.Is(err, fs.ErrorDirNotFound) {
			return nil
		}
		return err
	})
}

// Delete removes the object name; KindNotFound if it does not exist.
func (r *Relay) Delete(ctx context.Context, name string) error {
	const op = "delete"
	if err := r.check(op, false, name); err != nil {
		return err
	}
	r.unlist(name)
	tried := false
	return r.do(ctx, call{op: op, name: name, timeout: r.cfg.timeout}, func(actx context.Context) error {
		obj, err := r.f.NewObject(actx, name)
		if err != nil {
			if tried && isNotFound(err) {
				return nil // an earlier try removed it and lost the reply
			}
			return objectError(err)
		}
		tried = true
		return obj.Remove(actx)
	})
}

// Move renames from to to, replacing any object at to: server-side when the
// backend can (a rename, or a server-side copy then delete), else
// KindUnsupported without moving a byte through this machine.
func (r *Relay) Move(ctx context.Context, from, to string) error {
	const op = "move"
	if err := r.check(op, false, from, to); err != nil {
		return err
	}
	label := from + " -> " + to
	r.unlist(from, to)
	if !r.features.ServerSideMove && !r.features.ServerSideCopy {
		return &Error{Op: op, Name: label, Kind: KindUnsupported,
			Err: fmt.Errorf("backend %s can neither rename nor copy on the server: download and upload instead", r.features.Type)}
	}
	if from == to {
		_, err := r.Stat(ctx, from)
		return relabel(op, err)
	}
	tried := false
	return r.do(ctx, call{op: op, name: label, timeout: r.cfg.timeout}, func(actx context.Context) error {
		src, err := r.f.NewObject(actx, from)
		if err != nil {
			if tried && isNotFound(err) {
				if _, err2 := r.f.NewObject(actx, to); err2 == nil {
					return nil // an earlier try moved it and lost the reply
				}
			}
			return objectError(err)
		}
		var dst fs.Object
		if o, err := r.f.NewObject(actx, to); err == nil {
			dst = o
		} else if !isNotFound(objectError(err)) {
			return err
		}
		tried = true
		_, err = operations.Move(actx, r.f, dst, to, src)
		return err
	})
}

// Rmdir removes the empty folder dir ("" is the relay root itself). It is a
// no-op on bucket backends, where folders are only name prefixes.
func (r *Relay) Rmdir(ctx context.Context, dir string) error {
	const op = "rmdir"
	if err := r.check(op, true, dir); err != nil {
		return err
	}
	if r.features.BucketBased {
		return nil
	}
	tried := false
	return r.do(ctx, call{op: op, name: dir, timeout: r.cfg.timeout}, func(actx context.Context) error {
		err := r.f.Rmdir(actx, dir)
		if tried && isNotFound(err) {
			return nil // an earlier try removed it and lost the reply
		}
		tried = true
		return err
	})
}

// Purge removes dir and everything under it; a missing dir is not an error.
// The relay root cannot be purged: purge its folders one by one.
func (r *Relay) Purge(ctx context.Context, dir string) error {
	const op = "purge"
	if err := r.check(op, false, dir); err != nil {
		return err
	}
	return r.do(ctx, call{op: op, name: dir, timeout: r.cfg.dataTimeout}, func(actx context.Context) error {
		if r.f.Features().Purge == nil {
			// rclone's fallback (delete each object, then the folders) logs
			// failures for a missing folder: look first.
			if _, err := r.f.List(actx, dir); errors.Is(err, fs.ErrorDirNotFound) {
				return nil
			}
		}
		err := operations.Purge(actx, r.f, dir)
		if isNotFound(err) {
			return nil
		}
		return err
	})
}

// About reports the backend's space; a field is -1 when the backend does not
// say. KindUnsupported when the backend cannot tell at all.
func (r *Relay) About(ctx context.Context) (Usage, error) {
	const op = "about"
	if err := r.check(op, true); err != nil {
		return Usage{}, err
	}
	doAbout := r.f.Features().About
	if doAbout == nil {
		return Usage{}, &Error{Op: op, Kind: KindUnsupported,
			Err: fmt.Errorf("backend %s does not report its usage", r.features.Type)}
	}
	var u Usage
	err := r.do(ctx, call{op: op, timeout: r.cfg.timeout}, func(actx context.Context) error {
		fu, err := doAbout(actx)
		if err != nil {
			return err
		}
		u = Usage{Total: orUnknown(fu.Total), Used: orUnknown(fu.Used), Free: orUnknown(fu.Free)}
		return nil
	})
	return u, err
}

func orUnknown(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}
