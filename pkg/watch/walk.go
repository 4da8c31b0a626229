package watch

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// tree maps each watched directory (relative, slash-separated) to what was
// watched there, so that a subtree's watches can be dropped in one go and a
// name that now holds another directory can be told apart.
type tree map[string]*node

type node struct {
	id   fileID              // the directory watched under this name
	kids map[string]struct{} // its watched subdirectories
}

func (t tree) add(rel string, id fileID) {
	if n, ok := t[rel]; ok {
		n.id = id
	} else {
		t[rel] = &node{id: id, kids: map[string]struct{}{}}
	}
	if rel == "." {
		return
	}
	parent := path.Dir(rel)
	if t[parent] == nil {
		t[parent] = &node{kids: map[string]struct{}{}}
	}
	t[parent].kids[rel] = struct{}{}
}

// cut removes rel and everything below it, calling fn for each.
func (t tree) cut(rel string, fn func(rel string)) {
	n, ok := t[rel]
	if !ok {
		return
	}
	delete(t, rel)
	if parent, ok := t[path.Dir(rel)]; ok && rel != "." {
		delete(parent.kids, rel)
	}
	for kid := range n.kids {
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
			if err := w.watchDir(r, d, &st); err != nil {
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
func (w *Watcher) watchDir(rel string, d fs.DirEntry, st *walkState) error {
	if st.limitErr != nil {
		st.unwatched++ // keep walking: to count, and to report what is there
		return nil
	}
	err := w.fsw.Add(w.abs(rel))
	switch {
	case err == nil:
		var id fileID
		if fi, err := d.Info(); err == nil {
			id = idOf(fi)
		}
		w.tree.add(rel, id)
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

// rewalk restores the watches after events were lost. Adding is cheap and
// idempotent, so every directory is added again; a watch is removed first
// only where its name no longer holds the directory it was added for (see
// unwatch), because removing a watch queues an event, and removing them all
// would overflow the queue again on a large tree.
func (w *Watcher) rewalk() {
	now := map[string]fileID{}
	_ = filepath.WalkDir(w.root, func(p string, d fs.DirEntry, err error) error {
		if w.closed() {
			return filepath.SkipAll
		}
		r, ok := w.rel(p)
		if err != nil || !ok || !d.IsDir() {
			return nil
		}
		if r != "." && w.opts.Ignore(r) {
			return filepath.SkipDir
		}
		if fi, err := d.Info(); err == nil {
			now[r] = idOf(fi)
		}
		return nil
	})
	for rel, n := range w.tree {
		if id, ok := now[rel]; !ok || id != n.id {
			w.unwatch(rel)
		}
	}
	if err := w.watchTree(".", false); err != nil {
		w.log.Warn("re-watch the folder", "error", err)
	}
}
