// Package engine runs sync rounds for one repository: scan the folder, pull
// what other clients published, push what changed here, and collect relay
// data every expected puller has (docs/PROTOCOL.md). It decides; the protocol
// package reads and writes relay objects, localfs touches the folder.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/filter"
	"github.com/escale-sync/escale/pkg/localfs"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/state"
	"github.com/escale-sync/escale/pkg/storage"
)

// Mode is a client's sync direction.
type Mode string

// The modes of INTERFACE.md.
const (
	Shared       Mode = "shared"
	Upload       Mode = "upload"
	Download     Mode = "download"
	Conservative Mode = "conservative"
)

func (m Mode) pushes() bool { return m != Download }
func (m Mode) pulls() bool  { return m != Upload }

// Options configure an Engine.
type Options struct {
	Name     string // repository name, for messages
	Path     string // the local folder
	Client   string // this client's name
	Mode     Mode
	StateDir string // this repository's own state folder (database, trash)

	Pullers         int           // 0: every registered puller but the pusher
	PullerTimeout   time.Duration // a puller unseen this long stops pinning data
	Quota           int64         // 0: none
	MaxPackSize     int64         // 0: DefaultMaxPackSize
	MaxDelete       int           // percent; 0 means 50 unless MaxDeleteSet
	AllowMassDelete bool          // this round may delete more than MaxDelete
	// MaxManifestChanges is how many changes one manifest holds at most: a
	// push with more publishes several (push.go). 0:
	// DefaultMaxManifestChanges. Tests lower it.
	MaxManifestChanges int
	// Progress, when set, is told of the bytes each data object moved
	// (progress bars; called from the round's goroutine).
	Progress func(n int64)
	// Repair, when set, rebuilds a wiped or replaced relay (repair.go).
	Repair *Repair
	// Settle: a file changed less than this long ago is pushed by a later
	// round — a program may still be writing it, and a snapshot taken
	// between two of its writes would be a torn version. 0: no wait.
	Settle time.Duration
	// WantPatience is how long, at least, a request for missing content
	// waits on one holder before it is asked of the next client (and at
	// least 4 rounds): an idle holder polls only every max_poll. 0:
	// DefaultWantPatience.
	WantPatience time.Duration
	// ChunkPackSize is the size a big file's new chunks are packed to
	// (PROTOCOL.md §7). 0: chunkPackSize. Tests shrink it to see many.
	ChunkPackSize int64
	DryRun        bool // rounds only say what they would do (Result.Plan)
	Filter        *filter.Filter
	// IndexBy and IndexN page the relay index: "hash" with N pages, or
	// "topdir" keeping paths that share their first N folders on one page.
	// "" picks hash paging sized to the tree.
	IndexBy string
	IndexN  int

	Encrypted   bool
	Credentials protocol.Credentials
	// KeyOptions are passed to protocol.Create (tests lower scrypt's cost).
	KeyOptions []envelope.Option

	Logger *slog.Logger
	Now    func() time.Time
	GOOS   string // name rules of this OS; default runtime.GOOS
}

// Defaults.
const (
	DefaultMaxPackSize   = 16 << 20
	DefaultPullerTimeout = 30 * 24 * time.Hour
	DefaultMaxDelete     = 50
	// DefaultMaxManifestChanges: a manifest of this many changes is 3 to 5
	// MB of JSON (300 to 460 bytes a file, TestManifestSizeEstimate), far
	// below protocol.MaxManifest, and other clients start applying a big
	// first sync while the rest of it goes up.
	DefaultMaxManifestChanges = 10000
	// DefaultSettle is escale's default Settle (config key settle).
	DefaultSettle = time.Second
	// SmallFile is the largest file that travels in a pack; bigger ones are chunked.
	SmallFile = 1 << 20
)

// Engine syncs one repository. It is not safe for concurrent use: one round
// at a time.
type Engine struct {
	opts   Options
	log    *slog.Logger
	relay  *storage.Relay
	repo   *protocol.Repo
	db     *state.DB
	folder *localfs.Folder
	cid    string
	chunk  *chunkParams
	codec  *codec
	// peers caches other clients' records (clients/<cid>/info) by id.
	peers map[string]*protocol.ClientInfo
	// cleaned is set once this process removed its crash leftovers.
	cleaned bool
	// fresh: the local state had no repository when this process opened
	// it (first run, or a lost state folder: recoverLostState).
	fresh bool
	// scanned counts what the last scan found, for Status.
	scanned struct{ files, conflicts int }
	// written holds the files this round's pull put in place, for the
	// rescan after it (scan.Scanner.Known).
	written map[string]state.FileRecord
	// stagingEmpty: no chunk of a part is staged (parts.go).
	stagingEmpty bool
	// racyWindow is the scans' (0: scan.DefaultRacyWindow); tests shorten it.
	racyWindow time.Duration
	// testHook, set by tests only, runs at named points of a round
	// ("push" before the push; "read" once a big file is read, before its
	// final check) to change the folder there.
	testHook func(point, path string)
	// res is the result of the round in progress, for problem().
	res *Result
	// staged file states and wants, committed together by flushState.
	staged      map[string]*fileState
	stagedWants map[string]*wantItem
}

func (e *Engine) hook(point, path string) {
	if e.testHook != nil {
		e.testHook(point, path)
	}
}

// Result is what one round did.
type Result struct {
	Pulled      int // files written or moved here
	Deleted     int // files moved to the trash because another client deleted them
	Pushed      int // changes published
	Conflicts   int // conflict copies made here
	BytesUp     int64
	BytesDown   int64
	ObjectsUp   int      // data objects uploaded (packs, chunks)
	ObjectsDown int      // data objects downloaded
	RelayUsage  int64    // bytes on the relay as last measured (push, with a quota); -1: not measured
	Collected   int      // relay objects deleted because every puller has them
	Waiting     []string // what holds this repository back (exit code 2)
	Problems    []string // per-file problems that did not stop the round
	Plan        []string // with DryRun: what the round would do
	RemoteHeads int      // other clients seen
	HashedBytes int64    // local bytes read to hash them (the hash cache spares the rest)
}

// Busy reports whether the round moved anything (adaptive polling resets).
func (r *Result) Busy() bool {
	return r.Pulled+r.Deleted+r.Pushed+r.Collected > 0
}

// New opens the local state (exclusively: a second process on the same
// repository gets a clear error), the folder and the repository on relay,
// creating the repository when the relay folder is empty.
func New(ctx context.Context, relay *storage.Relay, opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WantPatience == 0 {
		opts.WantPatience = DefaultWantPatience
	}
	if opts.ChunkPackSize <= 0 || opts.ChunkPackSize > chunkPackSize {
		opts.ChunkPackSize = chunkPackSize
	}
	if opts.GOOS == "" {
		opts.GOOS = runtime.GOOS
	}
	if opts.Mode == "" {
		opts.Mode = Shared
	}
	if opts.MaxPackSize <= 0 {
		opts.MaxPackSize = DefaultMaxPackSize
	}
	if opts.MaxManifestChanges <= 0 {
		opts.MaxManifestChanges = DefaultMaxManifestChanges
	}
	if opts.PullerTimeout <= 0 {
		opts.PullerTimeout = DefaultPullerTimeout
	}
	if opts.MaxDelete <= 0 {
		opts.MaxDelete = DefaultMaxDelete
	}
	if opts.Client == "" {
		return nil, errors.New("no client name: set `client` for the repository")
	}
	e := &Engine{opts: opts, relay: relay, log: opts.Logger.With("repo", opts.Name), codec: newCodec(), peers: map[string]*protocol.ClientInfo{}}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state folder %s: %w", opts.StateDir, err)
	}
	db, err := state.Open(filepath.Join(opts.StateDir, "state.db"))
	if err != nil {
		return nil, err
	}
	e.db = db
	folder, err := localfs.OpenFolder(opts.Path, localfs.Options{TrashDir: filepath.Join(opts.StateDir, "trash"), Durability: localfs.Batch, Now: opts.Now})
	if err != nil {
		db.Close()
		return nil, err
	}
	e.folder = folder
	if err := e.openRepo(ctx); err != nil {
		e.Close()
		return nil, err
	}
	e.cleanStaging()
	return e, nil
}

// Close releases the state database and the folder.
func (e *Engine) Close() error {
	var errs []error
	if e.folder != nil {
		errs = append(errs, e.folder.Close())
	}
	if e.db != nil {
		errs = append(errs, e.db.Close())
	}
	return errors.Join(errs...)
}

// CID is this client's id on the relay.
func (e *Engine) CID() string { return e.cid }

// openRepo opens (or creates) the repository and checks it is the one the
// local state was synced with: a relay wiped or replaced must stop the
// client, never look like "everything was deleted".
func (e *Engine) openRepo(ctx context.Context) error {
	var known, client string
	if err := e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketMeta)
		if err != nil {
			return err
		}
		known, client = string(b.Get([]byte("repo"))), string(b.Get([]byte("client")))
		return nil
	}); err != nil {
		return err
	}
	e.fresh = known == ""
	if client != "" && client != e.opts.Client {
		// Two configurations sharing a state_dir and a repository name, or a
		// renamed client: either way this state is not this client's.
		return fmt.Errorf("the local state in %s belongs to client %q, not %q: give each configuration its own state_dir (or repository name); a client cannot be renamed in place", e.opts.StateDir, client, e.opts.Client)
	}
	if !e.opts.Encrypted {
		e.log.Warn("encryption = none: whoever can read the relay sees every file name and content of this repository; only a new repository can be encrypted (encryption = \"age\")")
	}
	creds := e.opts.Credentials
	if creds.CacheFile == "" {
		creds.CacheFile = filepath.Join(e.opts.StateDir, "keys.cache") // spares scrypt at later starts
	}
	repo, err := protocol.Open(ctx, e.relay, e.opts.Encrypted, creds)
	if errors.Is(err, protocol.ErrNoRepository) && e.opts.DryRun {
		return fmt.Errorf("the relay %s holds no repository yet; the first real run creates it (a dry run changes nothing)", e.relay)
	}
	reset := false
	if e.opts.Repair != nil && known != "" {
		if repo, reset, err = e.repairOpen(ctx, repo, err, known, creds); err != nil {
			return err
		}
	} else if errors.Is(err, protocol.ErrNoRepository) {
		if known != "" {
			return fmt.Errorf("the relay %s is empty but this client synced repository %s there: the relay was wiped or the configuration points elsewhere; nothing was changed locally (rebuild it with `escale repair`, or restore a backup)", e.relay, known)
		}
		e.log.Info("creating a new repository on the relay", "relay", e.relay.String())
		repo, err = protocol.Create(ctx, e.relay, e.opts.Encrypted, creds, e.opts.KeyOptions...)
		if errors.Is(err, protocol.ErrCreateRaced) {
			e.log.Info("another client created the repository first; joining it")
			repo, err = protocol.Open(ctx, e.relay, e.opts.Encrypted, creds)
		}
	}
	if err != nil {
		return err
	}
	if known != "" && known != repo.ID() && !reset {
		return fmt.Errorf("the relay %s holds repository %s but this client synced repository %s: the relay was replaced; nothing was changed locally (if another client started a new repository there with `escale repair --new`, join it with `escale repair --new`)", e.relay, repo.ID(), known)
	}
	e.repo = repo
	e.cid = repo.CID(e.opts.Client)
	e.chunk = newChunkParams(repo.NameKey())
	if e.opts.DryRun {
		return nil
	}
	repo.SetOwner(e.cid) // reseals this client's records after a key rotation
	if reset {
		if err := e.resetRelayState(known != repo.ID()); err != nil {
			return err
		}
	}
	return e.db.Update(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := b.Put([]byte("repo"), []byte(repo.ID())); err != nil {
			return err
		}
		if err := b.Put([]byte("client"), []byte(e.opts.Client)); err != nil {
			return err
		}
		return b.Put([]byte("cid"), []byte(e.cid))
	})
}

// Round runs one full sync round: scan, pull, push, collect.
func (e *Engine) Round(ctx context.Context) (*Result, error) {
	if e.opts.DryRun {
		return e.dryRound(ctx)
	}
	res := &Result{RelayUsage: -1}
	e.res = res
	defer func() { e.res = nil }()
	if err := e.register(ctx); err != nil {
		return res, err
	}
	heads, err := e.repo.ListHeads(ctx)
	if err != nil {
		return res, fmt.Errorf("list heads: %w", err)
	}
	if err := e.recoverLostState(ctx, heads); err != nil {
		return res, err
	}
	e.fresh = false // only a first round can find a lost state
	if err := e.checkOwnHeads(ctx, heads); err != nil {
		return res, err
	}
	local, err := e.scanLocal(ctx)
	if err != nil {
		return res, err
	}
	if e.opts.Mode.pulls() {
		pulled, err := e.pull(ctx, heads, local, res)
		if err != nil {
			return res, err
		}
		if err := e.writeAcksIfDue(ctx); err != nil {
			return res, err
		}
		if pulled {
			// What the pull wrote is now the synced state; rescan so the push
			// sees only what really changed here (the hash cache keeps it cheap).
			if local, err = e.scanLocal(ctx); err != nil {
				return res, err
			}
		}
	}
	if e.opts.Mode.pushes() {
		e.hook("push", "")
		if err := e.push(ctx, local, res); err != nil {
			e.cleaned = false // its uploads may be orphans now
			return res, err
		}
	}
	// After the push, which reused the chunk packs an interrupted push had
	// uploaded, whatever no manifest refers to is a leftover, and so is a
	// collected manifest whose delete was missed.
	if !e.cleaned {
		n, err := e.cleanOrphans(ctx)
		if err != nil {
			return res, err
		}
		if n > 0 {
			e.log.Info("removed leftovers from the relay (an interrupted push, a missed delete)", "objects", n)
			res.Collected += n
		}
		e.cleaned = true
	}

	if e.opts.Mode.pushes() {
		if err := e.serveWants(ctx, heads, local, res); err != nil {
			return res, err
		}
	}
	if err := e.collect(ctx, heads, res); err != nil {
		return res, err
	}
	if err := e.rotateWants(heads); err != nil {
		return res, err
	}
	if err := e.publishWants(ctx); err != nil {
		return res, err
	}
	if err := e.publishIndex(ctx, len(local.entries)); err != nil {
		return res, err
	}
	if n, err := e.wantCount(); err != nil {
		return res, err
	} else if n > 0 {
		res.Waiting = append(res.Waiting, fmt.Sprintf("%d files wait for another client to send their content again", n))
	}
	if err := e.folder.Sync(); err != nil {
		return res, err
	}
	return res, nil
}
