package engine

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/zeebo/blake3"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/localfs"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/scan"
	"github.com/escale-sync/escale/pkg/state"
	"github.com/escale-sync/escale/pkg/storage"
)

// massDeleteMin: below this many deletions a round never counts as a mass
// deletion, so small folders can delete a few files.
const massDeleteMin = 10

// pull applies what other clients published since this client last pulled.
// It reports whether it changed anything locally.
func (e *Engine) pull(ctx context.Context, heads []protocol.Head, lv *localView, res *Result) (bool, error) {
	latest := map[string]uint64{}
	for _, h := range heads {
		if h.Manifest() && h.CID != e.cid && h.Seq > latest[h.CID] {
			latest[h.CID] = h.Seq
		}
	}
	res.RemoteHeads = len(latest)
	applied := map[string]uint64{}
	if err := e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketPeers)
		if err != nil {
			return err
		}
		for cid := range latest {
			applied[cid] = getU64(b, cid)
		}
		return nil
	}); err != nil {
		return false, err
	}
	cids := make([]string, 0, len(latest))
	for cid, seq := range latest {
		if seq < applied[cid] {
			rolledBack, err := e.rolledBack(ctx, cid, applied[cid])
			if err != nil {
				return false, err
			}
			if rolledBack {
				return false, fmt.Errorf("the relay shows client %s at update %d, but this client already applied update %d from it: the relay was rolled back or tampered with; nothing was applied (restore the relay, or run `escale repair`)", cid, seq, applied[cid])
			}
			// A listing that lags behind, with an old head left over (or only
			// the heads rolled back): nothing to apply, nothing lost.
			res.Waiting = append(res.Waiting, fmt.Sprintf("the relay's listing shows client %s at update %d, behind update %d applied here: a lagging listing, or its heads were rolled back", cid, seq, applied[cid]))
			continue
		}
		if seq > applied[cid] {
			cids = append(cids, cid)
		}
	}
	sort.Strings(cids)
	p := &puller{e: e, lv: lv, res: res, budget: e.deleteBudget(lv)}
	changed := false
	for _, cid := range cids {
		f := &fetcher{e: e, cid: cid}
		for seq := applied[cid] + 1; seq <= latest[cid]; seq++ {
			m, err := e.readManifest(ctx, cid, seq)
			if errors.Is(err, storage.ErrNotFound) {
				// Collected while this client was away, or it joined late:
				// catch up from the client's index instead.
				root, caught, err := p.catchUp(ctx, f, cid, seq)
				if err != nil {
					return changed, err
				}
				if p.touched {
					changed = true
				}
				if caught {
					applied[cid] = root
					seq = root
					continue
				}
			}
			if err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					// Written after its data and before its head, so it should be
					// there: listing lag, or it was collected while we were away.
					res.Waiting = append(res.Waiting, fmt.Sprintf("update %d of client %s is not on the relay (yet)", seq, cid))
					break
				}
				return changed, err
			}
			done, err := p.manifest(ctx, f, cid, m)
			if p.touched {
				changed = true
			}
			if err != nil {
				return changed, err
			}
			if !done {
				break
			}
			applied[cid] = seq
		}
		res.BytesDown += f.bytes
	}
	if !changed && !p.acked {
		return false, nil
	}
	// Durable before acknowledged: once acked, the pusher may delete the data.
	if err := e.folder.Sync(); err != nil {
		return changed, err
	}
	// The acks go out in the same round (Round calls writeAcks); the dirty
	// mark makes a failed ack write retried by later rounds.
	if err := e.db.Update(func(tx *state.Tx) error {
		bs, err := buckets(tx, bucketPeers, bucketMeta)
		if err != nil {
			return err
		}
		for cid, seq := range applied {
			if err := putU64(bs[0], cid, seq); err != nil {
				return err
			}
		}
		return putU64(bs[1], "ackdirty", 1)
	}); err != nil {
		return changed, err
	}
	return changed, nil
}

// rolledBack tells a relay rolled back from a listing that lags: after a
// rollback neither the last applied manifest of cid nor an index covering
// it is on the relay (both are read by name or from the index's own folder).
func (e *Engine) rolledBack(ctx context.Context, cid string, applied uint64) (bool, error) {
	_, err := e.relay.Stat(ctx, protocol.ManifestName(cid, applied))
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return false, err
	}
	root, _, err := e.readIndex(ctx, cid)
	if err != nil {
		return false, err
	}
	return root == nil || root.Seq < applied, nil
}

// catchUp merges client cid's index when it covers the missing manifest
// seq: every entry goes through the usual decision, and content this client
// lacks is asked for (PROTOCOL.md §9).
func (p *puller) catchUp(ctx context.Context, f *fetcher, cid string, seq uint64) (_ uint64, _ bool, err error) {
	defer func() {
		if ferr := p.e.flushState(); err == nil {
			err = ferr
		}
	}()
	root, entries, err := p.e.readIndex(ctx, cid)
	if err != nil || root == nil || root.Seq < seq {
		return 0, false, err
	}
	p.e.log.Info("catching up from another client's index", "client", cid, "entries", len(entries), "from", seq, "to", root.Seq)
	p.holder = cid
	defer func() { p.holder = "" }()
	for i := range entries {
		if err := p.change(ctx, f, &entries[i]); err != nil {
			if errors.Is(err, errHeldBack) || errors.Is(err, localfs.ErrChanged) || isLocalProblem(err) {
				p.res.Waiting = append(p.res.Waiting, fmt.Sprintf("catching up from client %s: %v", cid, err))
				return 0, false, nil
			}
			return 0, false, err
		}
	}
	p.acked = true
	return root.Seq, true, nil
}

// readManifest reads, verifies and validates manifest seq of cid.
func (e *Engine) readManifest(ctx context.Context, cid string, seq uint64) (*protocol.Manifest, error) {
	name := protocol.ManifestName(cid, seq)
	var m protocol.Manifest
	if err := e.repo.GetJSON(ctx, envelope.KindManifest, name, protocol.MaxManifest, &m); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("relay object %s: %w; nothing from it was applied", name, err)
	}
	if err := m.Validate(seq, e.opts.GOOS); err != nil {
		return nil, fmt.Errorf("relay object %s: %w; nothing from it was applied", name, err)
	}
	if got := e.repo.CID(m.Client); got != cid {
		return nil, fmt.Errorf("relay object %s: %w: it names client %q, which is not the client that owns it; nothing from it was applied", name, protocol.ErrInvalid, m.Client)
	}
	return &m, nil
}

type puller struct {
	e       *Engine
	lv      *localView
	res     *Result
	budget  int    // deletions this round may still make
	touched bool   // something local changed
	acked   bool   // a manifest was fully handled
	holder  string // set while catching up: whom to ask for content
}

// manifest applies one manifest. done is false when it must be retried on a
// later round (a local file changed meanwhile, data missing, mass delete).
func (p *puller) manifest(ctx context.Context, f *fetcher, cid string, m *protocol.Manifest) (done bool, err error) {
	f.setManifest(m)
	defer func() {
		if ferr := p.e.flushState(); err == nil {
			err = ferr
		}
	}()
	// Renamed files first, while their old path is still here to move; then
	// deletions, so a folder that became a file (or the reverse) is out of
	// the way; then the rest.
	order := make([]*protocol.Change, 0, len(m.Changes))
	for _, pass := range []func(*protocol.Change) bool{
		func(c *protocol.Change) bool { return c.From != "" },
		func(c *protocol.Change) bool { return c.From == "" && c.Kind == protocol.KindDelete },
		func(c *protocol.Change) bool { return c.From == "" && c.Kind != protocol.KindDelete },
	} {
		for i := range m.Changes {
			if pass(&m.Changes[i]) {
				order = append(order, &m.Changes[i])
			}
		}
	}
	for _, c := range order {
		err := p.change(ctx, f, c)
		switch {
		case err == nil:
		case errors.Is(err, errHeldBack):
			return false, nil
		case errors.Is(err, localfs.ErrChanged):
			p.e.log.Info("a local file changed while syncing; retrying next round", "path", c.Path)
			p.res.Waiting = append(p.res.Waiting, c.Path+" changed during the round")
			return false, nil
		case isLocalProblem(err):
			p.res.Problems = append(p.res.Problems, err.Error())
			p.e.log.Warn("cannot apply a change here; it will be retried", "path", c.Path, "err", err)
			return false, nil
		default:
			return false, err
		}
	}
	p.acked = true
	return true, nil
}

var errHeldBack = errors.New("held back")

func isLocalProblem(err error) bool {
	var ne *localfs.NameError
	return errors.As(err, &ne) || errors.Is(err, os.ErrPermission) || errors.Is(err, localfs.ErrUnsafePath)
}

// candidate is one side of a conflict.
type candidate struct {
	deleted bool
	mtime   int64
	by      string
	hash    string
}

// wins reports whether a beats b (PROTOCOL.md §6): a modification beats a
// deletion, then the later mtime, then the larger client name, then the
// larger hash — the same answer on every client.
func wins(a, b candidate) bool {
	if a.deleted != b.deleted {
		return !a.deleted
	}
	if a.mtime != b.mtime {
		return a.mtime > b.mtime
	}
	if a.by != b.by {
		return a.by > b.by
	}
	return a.hash > b.hash
}

func incoming(c *protocol.Change) candidate {
	return candidate{deleted: c.Kind == protocol.KindDelete, mtime: c.MTime, by: c.By, hash: c.Hash}
}

func (e *Engine) loadState(path string) (*fileState, error) {
	if st, ok := e.staged[path]; ok {
		return st, nil
	}
	var st *fileState
	err := e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketFiles)
		if err != nil {
			return err
		}
		var s fileState
		ok, err := getJSON(b, []byte(path), &s)
		if ok {
			st = &s
		}
		return err
	})
	return st, err
}

// saveState stages the synced state of path; flushState commits what is
// staged in one transaction (one fsync for a whole manifest, not one per
// file). A crash before the flush is harmless: the update is not
// acknowledged yet, so it is applied again, and the files already written
// are recognised as holding its content.
func (e *Engine) saveState(path string, st *fileState) error {
	if e.staged == nil {
		e.staged = map[string]*fileState{}
	}
	e.staged[path] = st
	delete(e.stagedWants, path)
	return nil
}

func (e *Engine) flushState() error {
	if len(e.staged) == 0 && len(e.stagedWants) == 0 {
		return nil
	}
	err := e.db.Update(func(tx *state.Tx) error {
		bs, err := buckets(tx, bucketFiles, bucketDirty, bucketWants)
		if err != nil {
			return err
		}
		for path, st := range e.staged {
			if err := putJSON(bs[0], []byte(path), st); err != nil {
				return err
			}
			if err := bs[2].Delete([]byte(path)); err != nil {
				return err
			}
			if err := bs[1].Put([]byte(path), nil); err != nil {
				return err
			}
		}
		for path, w := range e.stagedWants {
			if err := putJSON(bs[2], []byte(path), w); err != nil {
				return err
			}
		}
		return nil
	})
	e.staged, e.stagedWants = nil, nil
	return err
}

// change decides and applies one incoming change.
func (p *puller) change(ctx context.Context, f *fetcher, c *protocol.Change) error {
	e := p.e
	if e.opts.Filter != nil && !e.opts.Filter.Match(c.Path, false) {
		return nil // not synced here
	}
	if a, err := GetAccess(e.db, c.Path); err != nil {
		return err
	} else if !a.Write {
		return nil // w-: never written by a pull
	}
	st, err := e.loadState(c.Path)
	if err != nil {
		return err
	}
	if st != nil {
		if o := protocol.Compare(c.Version, st.Version); o == protocol.Equal || o == protocol.Lesser {
			return nil // have it, or newer
		}
	}
	le, modified := p.lv.modified(c.Path, st)
	me := e.opts.Client
	conflictCopy := false
	switch {
	case modified:
		if sameContent(c, le) {
			return p.adopt(c, st, le)
		}
		switch {
		case e.opts.Mode == Download:
			// A download client never publishes: the relay's version replaces
			// the local edit, which goes to the trash.
		case e.opts.Mode == Conservative && le != nil:
			return nil // never overwrite a file changed here
		default:
			local := candidate{deleted: le == nil, by: me}
			if le != nil {
				local.mtime, local.hash = le.MTime, le.Hash
			}
			if !wins(incoming(c), local) {
				return nil // ours wins: it is pushed this round, and the other side makes the conflict copy
			}
			conflictCopy = le != nil
		}
	case e.opts.Mode == Conservative && le != nil && st != nil && !st.Pulled:
		return nil // a file this client wrote itself is never overwritten
	case st != nil && protocol.Compare(c.Version, st.Version) == protocol.Concurrent:
		if le != nil && sameContent(c, le) {
			return p.adopt(c, st, le)
		}
		ours := candidate{deleted: st.Kind == protocol.KindDelete, mtime: st.MTime, by: st.By, hash: st.Hash}
		if !wins(incoming(c), ours) {
			return nil
		}
		conflictCopy = st.By == me && le != nil && e.opts.Mode != Download
	}
	if conflictCopy {
		if err := p.conflictCopy(c.Path, le); err != nil {
			return err
		}
		le = nil
	}
	return p.apply(ctx, f, c, st, le)
}

func sameContent(c *protocol.Change, le *localEntry) bool {
	if le == nil {
		return c.Kind == protocol.KindDelete
	}
	return c.Kind == le.changeKind() && c.Hash == le.Hash
}

// adopt records an incoming version whose content the folder already has:
// no conflict, and the merged vector so neither side sees one later.
func (p *puller) adopt(c *protocol.Change, st *fileState, le *localEntry) error {
	ns := stateOf(c)
	if st != nil {
		ns.Version = protocol.Merge(st.Version, c.Version)
	}
	if le != nil {
		ns.MTime, ns.Mode, ns.Size = le.MTime, uint32(le.Mode.Perm()), le.Size
	}
	ns.Pulled = true
	return p.e.saveState(c.Path, ns)
}

// conflictCopy moves the local version aside as a conflict copy; the next
// push publishes it as a new file.
func (p *puller) conflictCopy(path string, le *localEntry) error {
	name := localfs.ConflictName(path, time.Unix(0, le.MTime), p.e.opts.Client)
	if err := p.e.folder.Rename(path, name, le.expect()); err != nil {
		return err
	}
	p.res.Conflicts++
	p.touched = true
	delete(p.lv.entries, path)
	p.observe(name, le.Hash)
	p.e.log.Warn("conflict: both sides changed a file; this client's version was kept as a conflict copy", "path", path, "copy", name)
	return nil
}

// apply makes the folder hold c.
func (p *puller) apply(ctx context.Context, f *fetcher, c *protocol.Change, st *fileState, le *localEntry) error {
	e := p.e
	ns := stateOf(c)
	ns.Pulled = true
	switch c.Kind {
	case protocol.KindDelete:
		if le != nil {
			if p.budget <= 0 {
				p.res.Waiting = append(p.res.Waiting, fmt.Sprintf("mass deletion held back: more than %d%% of the files would be deleted; run `escale sync --allow-mass-delete` if that is intended", e.opts.MaxDelete))
				return errHeldBack
			}
			p.budget--
			if err := e.folder.Remove(c.Path, le.expect()); err != nil {
				return err
			}
			p.res.Deleted++
			p.touched = true
			delete(p.lv.entries, c.Path)
		}
	case protocol.KindSymlink:
		if err := e.writeSymlink(c.Path, c.Target, time.Unix(0, c.MTime), le); err != nil {
			return err
		}
		p.res.Pulled++
		p.touched = true
		p.observe(c.Path, c.Hash)
	case protocol.KindFile:
		if c.From != "" && le == nil {
			if moved, err := p.tryMove(c); err != nil || moved {
				if err == nil {
					p.res.Pulled++
					p.touched = true
					p.observe(c.Path, c.Hash)
					ns.Chunks = chunkRefs(c)
					return e.saveState(c.Path, ns)
				}
				return err
			}
		}
		if len(c.Data) == 0 && c.Size > 0 {
			// An index entry: the content must be republished by its holder.
			if p.holder == "" {
				return fmt.Errorf("%w: %s has no data", protocol.ErrInvalid, c.Path)
			}
			p.res.Waiting = append(p.res.Waiting, "asked for "+c.Path+" to be sent again")
			return e.want(c.Path, c, p.holder)
		}
		r := &fileReader{ctx: ctx, f: f, refs: c.Data, chunked: c.Size > SmallFile, want: c.Hash, h: blake3.New()}
		if r.chunked && st != nil && le != nil && sameAsState(le, st) {
			r.local = e.localChunks(c.Path, st)
		}
		meta := localfs.FileMeta{Mode: os.FileMode(c.Mode).Perm(), ModTime: time.Unix(0, c.MTime)}
		if err := e.folder.WriteAtomic(c.Path, r, meta, le.expect()); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				p.res.Waiting = append(p.res.Waiting, fmt.Sprintf("data of %s is not on the relay", c.Path))
				return errHeldBack
			}
			return fmt.Errorf("write %s: %w", c.Path, err)
		}
		ns.Chunks = chunkRefs(c)
		p.res.Pulled++
		p.touched = true
		p.observe(c.Path, c.Hash)
	}
	return e.saveState(c.Path, ns)
}

// observe records in the local view what the pull just wrote at path, so
// later changes of the same round judge against the folder as it is now.
func (p *puller) observe(path, hash string) {
	abs, err := p.e.folder.Resolve(path)
	if err != nil {
		delete(p.lv.entries, path)
		return
	}
	fi, err := os.Lstat(abs)
	if err != nil {
		delete(p.lv.entries, path)
		return
	}
	le := &localEntry{Kind: scan.File, Size: fi.Size(), MTime: fi.ModTime().UnixNano(), Mode: fi.Mode(), Inode: localfs.Inode(fi), Hash: hash}
	if fi.Mode()&os.ModeSymlink != 0 {
		le.Kind = scan.Symlink
		le.Target, _ = os.Readlink(abs)
		le.Size = 0
	}
	p.lv.entries[path] = le
}

// tryMove applies a rename as a local move when the old file is unchanged
// and holds the same content: no bytes move.
func (p *puller) tryMove(c *protocol.Change) (bool, error) {
	st, err := p.e.loadState(c.From)
	if err != nil || st == nil || st.Kind != protocol.KindFile || st.Hash != c.Hash {
		return false, err
	}
	le, modified := p.lv.modified(c.From, st)
	if modified || le == nil {
		return false, nil
	}
	if err := p.e.folder.Rename(c.From, c.Path, le.expect()); err != nil {
		if errors.Is(err, localfs.ErrChanged) {
			return false, nil
		}
		return false, err
	}
	// The old path's own tombstone arrives in the same manifest and finds
	// nothing to delete.
	delete(p.lv.entries, c.From)
	defer p.observe(c.Path, c.Hash)
	meta := time.Unix(0, c.MTime)
	if abs, err := p.e.folder.Resolve(c.Path); err == nil {
		_ = os.Chtimes(abs, meta, meta)
	}
	return true, nil
}

func chunkRefs(c *protocol.Change) []protocol.Ref {
	if c.Size <= SmallFile {
		return nil
	}
	return c.Data
}

// localChunks serves chunks of the unchanged local version of path, so a
// changed big file only downloads the chunks it does not have.
func (e *Engine) localChunks(path string, st *fileState) func(string) []byte {
	type span struct{ off, size int64 }
	spans := map[string]span{}
	var off int64
	for _, r := range st.Chunks {
		spans[r.Hash] = span{off, r.Size}
		off += r.Size
	}
	abs, err := e.folder.Resolve(path)
	if err != nil || len(spans) == 0 {
		return nil
	}
	return func(hash string) []byte {
		s, ok := spans[hash]
		if !ok || hash == "" {
			return nil
		}
		fh, err := os.Open(filepath.Clean(abs))
		if err != nil {
			return nil
		}
		defer fh.Close()
		buf := make([]byte, s.size)
		if _, err := fh.ReadAt(buf, s.off); err != nil {
			return nil
		}
		sum := blake3.Sum256(buf)
		if hex.EncodeToString(sum[:]) != hash {
			return nil
		}
		return buf
	}
}

// writeSymlink replaces path by a symlink to target.
func (e *Engine) writeSymlink(path, target string, mtime time.Time, le *localEntry) error {
	abs, err := e.folder.Resolve(path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return err
	}
	if le != nil {
		if err := e.folder.Remove(path, le.expect()); err != nil {
			return err
		}
	}
	tmp := filepath.Join(filepath.Dir(abs), localfs.DefaultTempPrefix+"link-"+envelope.RandomName())
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("symlink %s: %w", path, err)
	}
	if err := setSymlinkTime(tmp, mtime); err != nil {
		e.log.Debug("cannot set a symlink's mtime", "path", path, "err", err)
	}
	if err := os.Rename(tmp, abs); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("symlink %s: %w", path, err)
	}
	return nil
}

// deleteBudget is how many files this round may delete (PROTOCOL.md §6).
func (e *Engine) deleteBudget(lv *localView) int {
	if e.opts.AllowMassDelete {
		return int(^uint(0) >> 1)
	}
	return max(massDeleteMin, lv.files*e.opts.MaxDelete/100)
}
