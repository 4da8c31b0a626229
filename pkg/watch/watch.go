// Package watch tells escale's daemon, soon after an edit, which local paths
// changed, so it can push without rescanning constantly.
//
// A Watcher watches every directory under a root with fsnotify (which is not
// recursive by itself): directories that appear later, by mkdir -p or moved
// in from elsewhere, are walked and watched as their Create event arrives, and
// what they already hold is reported. Events are gathered into one Batch per
// burst: a Batch is sent once no event came for Options.Debounce, and at the
// latest Options.MaxDelay after the burst's first event.
//
// Nothing here fails for lack of system resources. When the operating system
// refuses more watches (fs.inotify.max_user_watches on Linux, the open-file
// limit with kqueue), the Watcher logs one warning, sends Batch{Overflow: true}
// and reports Degraded, and the daemon should scan periodically. When the
// kernel's event queue overflows, events were lost: the Watcher re-adds its
// watches and sends Batch{Overflow: true}, meaning "rescan everything".
//
// Three goroutines keep the fsnotify reader from ever waiting on disk work or
// on the consumer: the reader only records paths in memory (bounded, see
// Options.MaxPaths), a walker stats and watches new directories, and an
// emitter times and sends batches.
package watch

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults for zero Options fields.
const (
	DefaultDebounce = 500 * time.Millisecond
	DefaultMaxDelay = 5 * time.Second
	DefaultMaxPaths = 10_000
)

// Options tune a Watcher; the zero value is usable.
type Options struct {
	// Debounce is the quiet period after the last event before a Batch is
	// sent (default 500ms).
	Debounce time.Duration
	// MaxDelay bounds how long a busy burst can hold a Batch back, counted
	// from the burst's first event (default 5s, never below Debounce).
	MaxDelay time.Duration
	// Ignore is called with slash-separated paths relative to the root, for
	// files and directories, from several goroutines. Ignored paths are never
	// reported; an ignored directory is neither watched nor walked, so return
	// true for a directory only when nothing below it can matter.
	Ignore func(rel string) bool
	// MaxPaths caps the paths held for one Batch; beyond it the Batch is
	// truncated and marked Overflow (default 10,000).
	MaxPaths int
	// Logger receives the warnings; nil discards them.
	Logger *slog.Logger
}

// Batch is what changed during one burst of events.
type Batch struct {
	// Paths are slash-separated, relative to the root, deduplicated and
	// sorted: files and directories that were created, written, removed,
	// renamed (both names) or had their attributes changed. Truncated when
	// Overflow is set.
	Paths []string
	// Overflow means events were lost or too many to list: rescan everything.
	Overflow bool
}

// Watcher reports changes under one root; see the package documentation.
type Watcher struct {
	root   string // absolute, symlinks resolved
	prefix string // root with a trailing separator, to cut event names
	opts   Options
	log    *slog.Logger

	fsw  *fsnotify.Watcher
	pend *pending
	tree tree // watched directories; owned by the walker (and New before it starts)

	out      chan Batch
	kickEmit chan struct{}
	kickWalk chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup

	degraded     atomic.Bool
	limitOnce    sync.Once
	overflowOnce sync.Once
	closeOnce    sync.Once
	closeErr     error
}

// New watches root and every directory below it. It returns once the
// existing directories are watched; changes made after that are reported.
func New(root string, opts Options) (*Watcher, error) {
	abs, err := resolveRoot(root)
	if err != nil {
		return nil, err
	}
	opts = withDefaults(opts)
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: start the file watcher: %w (on Linux, raise fs.inotify.max_user_instances)", abs, err)
	}
	w := &Watcher{
		root:     abs,
		prefix:   abs,
		opts:     opts,
		log:      opts.Logger,
		fsw:      fsw,
		pend:     newPending(opts.MaxPaths),
		tree:     tree{},
		out:      make(chan Batch),
		kickEmit: make(chan struct{}, 1),
		kickWalk: make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	if !strings.HasSuffix(abs, string(filepath.Separator)) {
		w.prefix += string(filepath.Separator)
	}
	// The reader runs during the first walk so the kernel queue cannot fill.
	w.start(w.readLoop, w.emitLoop)
	if err := w.watchTree(".", false); err != nil {
		_ = w.Close()
		return nil, err
	}
	w.start(w.walkLoop)
	return w, nil
}

func resolveRoot(root string) (string, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", fmt.Errorf("watch %s: %w", root, err)
	}
	// Walking does not follow symlinks, so a symlinked root must be resolved.
	abs, err = filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("watch %s: %w; check that the folder exists", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("watch %s: %w", root, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("watch %s: not a folder; give the synced folder's path", root)
	}
	return abs, nil
}

func withDefaults(o Options) Options {
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	o.MaxDelay = max(o.MaxDelay, o.Debounce)
	if o.MaxPaths <= 0 {
		o.MaxPaths = DefaultMaxPaths
	}
	if o.Ignore == nil {
		o.Ignore = func(string) bool { return false }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func (w *Watcher) start(loops ...func()) {
	for _, loop := range loops {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			loop()
		}()
	}
}

// Changes delivers one Batch per burst. It is closed by Close.
func (w *Watcher) Changes() <-chan Batch { return w.out }

// Degraded reports that some directories could not be watched (a system
// limit was reached, or the root itself went away): changes may go unreported
// and the caller should scan periodically. It never reverts.
func (w *Watcher) Degraded() bool { return w.degraded.Load() }

// Close stops watching, waits for the Watcher's goroutines to end and closes
// Changes. It is safe to call more than once.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		close(w.done)
		if err := w.fsw.Close(); err != nil {
			w.closeErr = fmt.Errorf("watch %s: close: %w", w.root, err)
		}
		w.wg.Wait()
	})
	return w.closeErr
}

func (w *Watcher) closed() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// readLoop turns fsnotify events into recorded paths and walker work. It
// only touches memory, so fsnotify's own reader is never held up.
func (w *Watcher) readLoop() {
	for {
		select {
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			w.handleEvent(ev)
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			w.handleError(err)
		case <-w.done:
			return
		}
	}
}

func (w *Watcher) handleEvent(ev fsnotify.Event) {
	rel, ok := w.rel(ev.Name)
	if !ok {
		return
	}
	if rel == "." {
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			w.rootLost()
		}
		return // a write or chmod of the root itself changes no synced path
	}
	if w.opts.Ignore(rel) {
		return
	}
	// A path that vanished takes its watches along; one that appeared may be
	// a directory to watch. Gone first: a rename can replace a path.
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		w.pend.push(op{kind: opGone, rel: rel})
	}
	if ev.Has(fsnotify.Create) {
		w.pend.push(op{kind: opCreated, rel: rel})
	}
	w.pend.addPath(rel)
	kick(w.kickWalk)
	kick(w.kickEmit)
}

func (w *Watcher) handleError(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		w.overflowOnce.Do(func() {
			w.log.Warn("too many changes at once overflowed the system's event queue; rescanning everything "+
				"(on Linux, raise the queue with `sudo sysctl fs.inotify.max_queued_events=65536`)",
				"folder", w.root)
		})
		w.log.Debug("watch: event queue overflow", "folder", w.root)
	} else {
		w.log.Warn("watching stumbled; rescanning everything", "folder", w.root, "error", err)
	}
	// Events were lost, directories created meanwhile among them: re-add
	// every watch, then tell the caller to rescan.
	w.pend.requestRewalk()
	kick(w.kickWalk)
	kick(w.kickEmit)
}

func (w *Watcher) rootLost() {
	if w.degraded.CompareAndSwap(false, true) {
		w.log.Warn("the synced folder was removed or moved away; changes can no longer be watched, "+
			"falling back to periodic scans; restart escale once the folder is back",
			"folder", w.root)
	}
	w.pend.markOverflow()
	kick(w.kickEmit)
}

// limitReached records that the system refused a watch.
func (w *Watcher) limitReached(folders int, err error) {
	w.degraded.Store(true)
	w.limitOnce.Do(func() {
		limit, advice := limitAdvice(err)
		w.log.Warn(fmt.Sprintf("watching %d folders exceeds the system limit (%s); falling back to periodic scans; %s",
			folders, limit, advice), "folder", w.root, "error", err)
		w.pend.markOverflow()
		kick(w.kickEmit)
	})
}

// rel maps an event name to a slash-separated path relative to the root.
func (w *Watcher) rel(name string) (string, bool) {
	if name == w.root {
		return ".", true
	}
	if !strings.HasPrefix(name, w.prefix) {
		return "", false
	}
	return filepath.ToSlash(name[len(w.prefix):]), true
}

func (w *Watcher) abs(rel string) string {
	if rel == "." {
		return w.root
	}
	return filepath.Join(w.root, filepath.FromSlash(rel))
}

// kick wakes a loop without ever blocking; one pending wake-up is enough.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
