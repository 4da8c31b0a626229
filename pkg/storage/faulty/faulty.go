// Package faulty is a test-only rclone backend, "escalefaulty", that wraps
// another remote and injects faults: failed calls, a broken read stream, an
// upload that stops halfway or whose reply is lost, and listings that lag
// behind writes. It is a real rclone Fs, so a relay opened on its spec with
// storage.Open runs escale's whole storage path (retries, classification)
// over the faults.
//
// Tests create an Injector, Register it with the inner remote and open the
// returned spec. The registry of injectors is the package's only global: the
// backend's options reach NewFs as strings, so the id is how a backend finds
// its injector.
package faulty

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rclone/rclone/backend/overview"
	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/cache"
	"github.com/rclone/rclone/fs/config/configmap"
	"github.com/rclone/rclone/fs/config/configstruct"
	"github.com/rclone/rclone/fs/fserrors"
	"github.com/rclone/rclone/fs/fspath"
	"github.com/rclone/rclone/fs/hash"
	"github.com/rclone/rclone/fs/object"
)

// BackendName is the rclone type of the backend.
const BackendName = "escalefaulty"

func init() {
	fs.Register(&fs.RegInfo{
		Name:        BackendName,
		Description: "escale test backend: wraps a remote and injects faults",
		NewFs:       newFs,
		// Not one of rclone's own backends: it has no overview to look up.
		Overview: new(overview.BackendConfig),
		Options: []fs.Option{{
			Name:     "remote",
			Help:     "The remote to wrap, e.g. \":memory:bucket\" or \"/tmp/relay\".",
			Required: true,
		}, {
			Name:     "id",
			Help:     "The id an Injector was registered under with faulty.Register.",
			Required: true,
		}},
	})
}

var (
	registryMu sync.Mutex
	registry   = map[string]*Injector{}
)

// Register makes inj the injector of every backend opened with the returned
// spec, a connection string wrapping remote (a local folder or any rclone
// remote). id must be unique in the process; unregister frees it. A backend
// rclone has cached keeps inj after unregister: use a new id per test.
func Register(id string, inj *Injector, remote string) (spec string, unregister func()) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, taken := registry[id]; taken {
		panic(fmt.Sprintf("faulty: injector id %q is already registered; use a new id per test", id))
	}
	registry[id] = inj
	quote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	spec = ":" + BackendName + ",id=" + quote(id) + ",remote=" + quote(remote) + ":"
	return spec, func() {
		registryMu.Lock()
		defer registryMu.Unlock()
		delete(registry, id)
	}
}

func lookup(id string) *Injector {
	registryMu.Lock()
	defer registryMu.Unlock()
	return registry[id]
}

// Op is a kind of backend call, as the injector counts and matches them.
type Op string

// The operations. Every object call of the relay starts with OpNewObject
// (Stat, and the lookup before a read or a delete).
const (
	OpList      Op = "list"
	OpNewObject Op = "newobject"
	OpPut       Op = "put" // Put, PutStream and Update
	OpOpen      Op = "open"
	OpRemove    Op = "remove"
	OpMkdir     Op = "mkdir"
	OpRmdir     Op = "rmdir"
)

// Fault is what an injected failure looks like.
type Fault int

// The faults. PartialPut and PutThenFail act as Reset on calls other than a put.
const (
	// Transient fails the call with a retryable "503 Service Unavailable".
	Transient Fault = iota + 1
	// NotFound fails the call as if the object or folder were not there.
	NotFound
	// Reset fails the call with "connection reset by peer"; on OpOpen the
	// open succeeds and the stream breaks halfway through.
	Reset
	// PartialPut writes the first half of the object, then fails with a reset.
	PartialPut
	// PutThenFail writes the whole object, then fails with a reset: the
	// storage has it, the caller believes it failed.
	PutThenFail
)

func (f Fault) String() string {
	switch f {
	case Transient:
		return "transient"
	case NotFound:
		return "not-found"
	case Reset:
		return "reset"
	case PartialPut:
		return "partial-put"
	case PutThenFail:
		return "put-then-fail"
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

// Rule fails some calls.
type Rule struct {
	Op    Op     // "" matches every operation
	Name  string // path.Match pattern on the object or folder name; "" matches every name
	After int    // let this many matching calls through first
	Times int    // then fail this many matching calls; 0 means 1
	Fault Fault
}

func (r Rule) String() string {
	op, name := string(r.Op), r.Name
	if op == "" {
		op = "any"
	}
	if name == "" {
		name = "*"
	}
	return fmt.Sprintf("%s on %s %s after %d, %d times", r.Fault, op, name, r.After, max(r.Times, 1))
}

type armed struct {
	Rule
	seen, fired int
}

// Injector decides which calls fail and counts calls. It is safe for
// concurrent use; one injector may serve several backends.
type Injector struct {
	mu       sync.Mutex
	rules    []*armed
	counts   map[Op]int
	injected []string
	lag      int
	hidden   map[string]int // object name → lists of its folder it stays out of
}

// New returns an injector that injects nothing yet.
func New() *Injector {
	return &Injector{counts: map[Op]int{}, hidden: map[string]int{}}
}

// Add arms a rule. Rules are checked in the order added; the first that
// fires decides the call's fault.
func (in *Injector) Add(r Rule) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.rules = append(in.rules, &armed{Rule: r})
}

// FailNext fails the next n calls, whatever they are, with f.
func (in *Injector) FailNext(n int, f Fault) { in.Add(Rule{Times: n, Fault: f}) }

// Disarm drops every rule, fired or not, and reports how many faults the
// dropped rules had left to inject.
func (in *Injector) Disarm() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	left := 0
	for _, r := range in.rules {
		left += max(r.Times, 1) - r.fired
	}
	in.rules = nil
	return left
}

// SetListLag makes each object created from now on stay out of the next k
// listings of its folder (an eventually consistent listing). Reads by name
// see it at once. 0 stops the lag for objects created later.
func (in *Injector) SetListLag(k int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.lag = max(k, 0)
}

// Reveal makes every lagging object visible now, as if the listing had
// caught up; objects created later lag as SetListLag says.
func (in *Injector) Reveal() {
	in.mu.Lock()
	defer in.mu.Unlock()
	clear(in.hidden)
}

// Count is how many op calls were made, failed ones included.
func (in *Injector) Count(op Op) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.counts[op]
}

// Injected describes every fault injected so far, in order.
func (in *Injector) Injected() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.injected...)
}

// call counts one op call on name and returns the fault to inject, if any.
func (in *Injector) call(op Op, name string) Fault {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.counts[op]++
	for _, r := range in.rules {
		if r.Op != "" && r.Op != op {
			continue
		}
		if r.Name != "" {
			if ok, _ := path.Match(r.Name, name); !ok {
				continue
			}
		}
		if r.fired >= max(r.Times, 1) {
			continue
		}
		r.seen++
		if r.seen <= r.After {
			continue
		}
		r.fired++
		in.injected = append(in.injected, fmt.Sprintf("%s on %s %s", r.Fault, op, name))
		return r.Fault
	}
	return 0
}

// created starts the listing lag of a new object.
func (in *Injector) created(name string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.lag > 0 {
		in.hidden[name] = in.lag
	}
}

func (in *Injector) removed(name string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	delete(in.hidden, name)
}

// filter drops the lagging objects from a listing of dir and counts the
// listing against their lag.
func (in *Injector) filter(entries fs.DirEntries) fs.DirEntries {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.hidden) == 0 {
		return entries
	}
	out := entries[:0]
	for _, e := range entries {
		name := e.Remote()
		if n, ok := in.hidden[name]; ok {
			if _, isObj := e.(fs.Object); isObj {
				if n <= 1 {
					delete(in.hidden, name)
				} else {
					in.hidden[name] = n - 1
				}
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

func injectedErr(op Op, name string, f Fault) error {
	msg := fmt.Sprintf("escalefaulty: injected %s on %s %q", f, op, name)
	switch f {
	case Transient:
		return fserrors.RetryError(fmt.Errorf("%s: 503 Service Unavailable", msg))
	case NotFound:
		if op == OpList || op == OpRmdir || op == OpMkdir || op == OpPut {
			return fmt.Errorf("%s: %w", msg, fs.ErrorDirNotFound)
		}
		return fmt.Errorf("%s: %w", msg, fs.ErrorObjectNotFound)
	default:
		return fmt.Errorf("%s: %w", msg, syscall.ECONNRESET)
	}
}

// Options are the backend's options.
type Options struct {
	Remote string `config:"remote"`
	ID     string `config:"id"`
}

// Fs wraps the inner remote.
type Fs struct {
	name, root string
	inner      fs.Fs
	inj        *Injector
	features   *fs.Features
}

func newFs(ctx context.Context, name, root string, m configmap.Mapper) (fs.Fs, error) {
	var opt Options
	if err := configstruct.Set(m, &opt); err != nil {
		return nil, err
	}
	inj := lookup(opt.ID)
	if inj == nil {
		return nil, fmt.Errorf("%s: no injector registered under id %q: call faulty.Register first", BackendName, opt.ID)
	}
	if opt.Remote == "" {
		return nil, fmt.Errorf("%s: no remote to wrap: set the remote option", BackendName)
	}
	inner, err := cache.Get(ctx, fspath.JoinRootPath(opt.Remote, root))
	if err != nil && !errors.Is(err, fs.ErrorIsFile) {
		return nil, fmt.Errorf("%s: open the wrapped remote %q: %w", BackendName, opt.Remote, err)
	}
	f := &Fs{name: name, root: root, inner: inner, inj: inj}
	f.features = (&fs.Features{CanHaveEmptyDirectories: true}).Fill(ctx, f).Mask(ctx, inner)
	return f, err
}

// Name of the remote (as passed into NewFs).
func (f *Fs) Name() string { return f.name }

// Root of the remote (as passed into NewFs).
func (f *Fs) Root() string { return f.root }

// String describes the Fs.
func (f *Fs) String() string { return BackendName + "(" + f.inner.String() + ")" }

// Precision of the inner remote.
func (f *Fs) Precision() time.Duration { return f.inner.Precision() }

// Hashes of the inner remote.
func (f *Fs) Hashes() hash.Set { return f.inner.Hashes() }

// Features of the Fs: only what it wraps itself.
func (f *Fs) Features() *fs.Features { return f.features }

// List lists dir, leaving out the objects still lagging.
func (f *Fs) List(ctx context.Context, dir string) (fs.DirEntries, error) {
	if fault := f.inj.call(OpList, dir); fault != 0 {
		return nil, injectedErr(OpList, dir, fault)
	}
	entries, err := f.inner.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	for i, e := range entries {
		if o, ok := e.(fs.Object); ok {
			entries[i] = &Object{Object: o, f: f}
		}
	}
	return f.inj.filter(entries), nil
}

// NewObject finds the object remote.
func (f *Fs) NewObject(ctx context.Context, remote string) (fs.Object, error) {
	if fault := f.inj.call(OpNewObject, remote); fault != 0 {
		return nil, injectedErr(OpNewObject, remote, fault)
	}
	o, err := f.inner.NewObject(ctx, remote)
	if err != nil {
		return nil, err
	}
	return &Object{Object: o, f: f}, nil
}

// Put uploads in as src.Remote().
func (f *Fs) Put(ctx context.Context, in io.Reader, src fs.ObjectInfo, options ...fs.OpenOption) (fs.Object, error) {
	return f.put(ctx, in, src, func(in io.Reader, src fs.ObjectInfo) (fs.Object, error) {
		return f.inner.Put(ctx, in, src, options...)
	})
}

// PutStream uploads in, of unknown size, as src.Remote(). Features hides it
// when the inner remote cannot stream.
func (f *Fs) PutStream(ctx context.Context, in io.Reader, src fs.ObjectInfo, options ...fs.OpenOption) (fs.Object, error) {
	return f.put(ctx, in, src, func(in io.Reader, src fs.ObjectInfo) (fs.Object, error) {
		return f.inner.Features().PutStream(ctx, in, src, options...)
	})
}

// put runs an upload through the injector.
func (f *Fs) put(ctx context.Context, in io.Reader, src fs.ObjectInfo, upload func(io.Reader, fs.ObjectInfo) (fs.Object, error)) (fs.Object, error) {
	name := src.Remote()
	fault := f.inj.call(OpPut, name)
	switch fault {
	case 0, PutThenFail, PartialPut:
	default:
		return nil, injectedErr(OpPut, name, fault)
	}
	_, lookErr := f.inner.NewObject(ctx, name)
	isNew := lookErr != nil
	if fault == PartialPut {
		// Read the whole body (test objects are small), store half of it.
		data, err := io.ReadAll(in)
		if err != nil {
			return nil, err
		}
		half := data[:len(data)/2]
		in = bytes.NewReader(half)
		src = object.NewStaticObjectInfo(name, src.ModTime(ctx), int64(len(half)), true, nil, f)
	}
	o, err := upload(in, src)
	if err != nil {
		return nil, err
	}
	if isNew {
		f.inj.created(name)
	}
	if fault != 0 {
		return nil, injectedErr(OpPut, name, fault)
	}
	return &Object{Object: o, f: f}, nil
}

// Mkdir makes dir.
func (f *Fs) Mkdir(ctx context.Context, dir string) error {
	if fault := f.inj.call(OpMkdir, dir); fault != 0 {
		return injectedErr(OpMkdir, dir, fault)
	}
	return f.inner.Mkdir(ctx, dir)
}

// Rmdir removes the empty folder dir.
func (f *Fs) Rmdir(ctx context.Context, dir string) error {
	if fault := f.inj.call(OpRmdir, dir); fault != 0 {
		return injectedErr(OpRmdir, dir, fault)
	}
	return f.inner.Rmdir(ctx, dir)
}

// Object wraps an object of the inner remote.
type Object struct {
	fs.Object
	f *Fs
}

// Fs is the faulty Fs, not the inner one.
func (o *Object) Fs() fs.Info { return o.f }

// Open opens the object for reading; a Reset fault breaks the stream halfway.
func (o *Object) Open(ctx context.Context, options ...fs.OpenOption) (io.ReadCloser, error) {
	name := o.Remote()
	fault := o.f.inj.call(OpOpen, name)
	if fault != 0 && fault != Reset && fault != PartialPut && fault != PutThenFail {
		return nil, injectedErr(OpOpen, name, fault)
	}
	rc, err := o.Object.Open(ctx, options...)
	if err != nil || fault == 0 {
		return rc, err
	}
	remain := o.Size()
	for _, opt := range options {
		switch x := opt.(type) {
		case *fs.RangeOption:
			off, limit := x.Decode(o.Size())
			remain = o.Size() - off
			if limit >= 0 {
				remain = min(remain, limit)
			}
		case *fs.SeekOption:
			remain = o.Size() - x.Offset
		}
	}
	return &brokenReader{rc: rc, left: max(remain/2, 0), err: injectedErr(OpOpen, name, fault)}, nil
}

// Update replaces the object's content.
func (o *Object) Update(ctx context.Context, in io.Reader, src fs.ObjectInfo, options ...fs.OpenOption) error {
	_, err := o.f.put(ctx, in, src, func(in io.Reader, src fs.ObjectInfo) (fs.Object, error) {
		return o.Object, o.Object.Update(ctx, in, src, options...)
	})
	return err
}

// Remove deletes the object.
func (o *Object) Remove(ctx context.Context) error {
	name := o.Remote()
	if fault := o.f.inj.call(OpRemove, name); fault != 0 {
		return injectedErr(OpRemove, name, fault)
	}
	if err := o.Object.Remove(ctx); err != nil {
		return err
	}
	o.f.inj.removed(name)
	return nil
}

// brokenReader delivers left bytes, then fails.
type brokenReader struct {
	rc   io.ReadCloser
	left int64
	err  error
}

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, b.err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *brokenReader) Close() error { return b.rc.Close() }

var (
	_ fs.Fs          = (*Fs)(nil)
	_ fs.PutStreamer = (*Fs)(nil)
	_ fs.Object      = (*Object)(nil)
)
