package watch

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// tree maps each watched directory (relative, slash-separated) to its
// watched subdirectories, so a subtree's watches can be dropped in one go.
type tree map[string]map[string]struct{}

func (t tree) add(rel string) {
	if _, ok := t[rel]; !ok {
		t[rel] = map[string]struct{}{}
	}
	if rel == "." {
		return
	}
	parent := path.Dir(rel)
	if t[parent] == nil {
		t[parent] = map[string]struct{}{}
	}
	t[parent][rel] = struct{}{}
}

// cut removes rel and everything below it, calling fn for each.
func (t tree) cut(rel string, fn func(rel string)) {
	kids, ok := t[rel]
	if !ok {
		return
	}
	delete(t, rel)
	if rel != "." {
		delete(t[path.Dir(rel)], rel)
	}
	for kid := range kids {
		t.cut(kid, fn)
	}
	fn(rel)
}

// walkLoop does the disk work the reader must not wait for.
func (w *Watcher) walkLoop() {
	for {
		select {
		case <-w.kickWalk:
		case <-w.done:
			return
		}
		for !w.closed() {
			o, rewalk, ok := w.pend.next()
			if !ok {
				break
			}
			switch {
			case rewalk:
				w.rewalk()
			case o.kind == opGone:
				w.unwatch(o.rel)
			default:
				if err := w.watchTree(o.rel, true); err != nil {
					w.log.Warn("watch a new folder", "error", err)
				}
			}
		}
		kick(w.kickEmit) // the walker went idle: the Batch may be due
	}
}

// unwatch drops the watches at and below a path that vanished or moved.
// fsnotify drops a moved directory's own watch but keeps those below it
// under their old names, which would report later changes under the wrong
// path and make re-adding them at the new place a no-op.
func (w *Watcher) unwatch(rel string) {
	w.tree.cut(rel, func(r string) {
		err := w.fsw.Remove(w.abs(r))
		if err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) && !errors.Is(err, fsnotify.ErrClosed) {
			w.log.Debug("watch: remove", "path", r, "error", err)
		}
	})
}

// walkState counts a walk's directories for the limit warning.
type walkState struct {
	unwatched int
	limitErr  error
}

// watchTree watches rel and every directory below it, and with report
// records every path found: they may have been created before their
// directory was watched. A directory is watched before it is listed, so
// anything created in it is either listed or announced by an event.
func (w *Watcher) watchTree(rel string, report bool) error {
	var st walkState
	start := w.abs(rel)
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if w.closed() {
			return filepath.SkipAll
		}
		r, ok := w.rel(p)
		if !ok {
			return nil
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone already; its Remove event follows
			}
			w.log.Warn("cannot read a folder to watch; its changes are found only by scans", "path", r, "error", err)
			return nil
		}
		if r != "." && w.opts.Ignore(r) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if err := w.watchDir(r, &st); err != nil {
				return err
			}
		}
		if report && r != "." {
			w.pend.addPath(r)
			kick(w.kickEmit)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("watch %s: %w", start, err)
	}
	if st.limitErr != nil {
		w.limitReached(len(w.tree)+st.unwatched, st.limitErr)
	}
	return nil
}

// watchDir adds one directory's watch. Only an unexpected failure of the
// root is returned; limits degrade the Watcher instead.
func (w *Watcher) watchDir(rel string, st *walkState) error {
	if st.limitErr != nil {
		st.unwatched++ // keep walking: to count, and to report what is there
		return nil
	}
	err := w.fsw.Add(w.abs(rel))
	switch {
	case err == nil:
		w.tree.add(rel)
	case isLimit(err):
		st.limitErr = err
		st.unwatched++
	case errors.Is(err, fsnotify.ErrClosed):
		return filepath.SkipAll
	case rel == ".":
		return fmt.Errorf("%w; check that escale may read the folder", err)
	default:
		w.log.Warn("cannot watch a folder; its changes are found only by scans", "path", rel, "error", err)
	}
	return nil
}

// rewalk rebuilds every watch after events were lost. Watches below the root
// are dropped first, since their names may be stale (see unwatch); changes
// made meanwhile are covered by the rescan the Overflow Batch asks for.
func (w *Watcher) rewalk() {
	for _, p := range w.fsw.WatchList() {
		if p == w.root {
			continue
		}
		err := w.fsw.Remove(p)
		if err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) && !errors.Is(err, fsnotify.ErrClosed) {
			w.log.Debug("watch: remove", "path", p, "error", err)
		}
	}
	w.tree = tree{}
	if err := w.watchTree(".", false); err != nil {
		w.log.Warn("re-watch the folder", "error", err)
	}
}
