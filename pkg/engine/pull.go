package engine

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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

// listDataAt is how many data objects a manifest must name before the pull
// lists their client's data folder once rather than look each one up.
const listDataAt = 4

// pull applies what other clients published since this client last pulled.
// It reports whether it changed anything locally.
func (e *Engine) pull(ctx context.Context, heads []protocol.Head, lv *localView, res *Result) (bool, error) {
	defer e.relay.ForgetListed()
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
			if rolledBack && e.opts.Repair == nil {
				return false, fmt.Errorf("the relay shows client %s at update %d, but this client already applied update %d from it: the relay was rolled back or tampered with; nothing was applied (put back a newer copy of the relay, or run `escale repair --new` on each client to carry on with this one)", cid, seq, applied[cid])
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
		f := &fetcher{e: e, cid: cid, bufs: &bufPool{}}
		listed := false
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
			if !listed && len(m.Objects) >= listDataAt {
				// One listing instead of a lookup before each object read.
				// Without it, each read looks its object up: nothing lost.
				listed = true
				if _, err := e.relay.KeepListed(ctx, protocol.DataDir(cid)); err != nil {
					e.log.Debug("could not list the data of a client; reading its objects one by one", "client", cid, "err", err)
				}
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
		res.ObjectsDown += f.objects
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
	// What this client asked cid for before: cid may have sent it again in
	// a manifest the index covers, which this catch-up skips (see askAgain).
	asked, err := p.e.wantsFrom(cid)
	if err != nil {
		return 0, false, err
	}
	p.holder = cid
	defer func() { p.holder = "" }()
	for i := range entries {
		if err := p.change(ctx, f, &entries[i]); err != nil {
			if errors.Is(err, errHeldBack) || errors.Is(err, errDeferred) || errors.Is(err, localfs.ErrChanged) || isLocalProblem(err) {
				p.res.Waiting = append(p.res.Waiting, fmt.Sprintf("catching up from client %s: %v", cid, err))
				return 0, false, nil
			}
			return 0, false, err
		}
	}
	// Committed first: askAgain reads what this client still asks for.
	if err := p.e.flushState(); err != nil {
		return 0, false, err
	}
	if err := p.e.askAgain(cid, asked); err != nil {
		return 0, false, err
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
	budget  int               // deletions this round may still make
	touched bool              // something local changed
	acked   bool              // a manifest was fully handled
	holder  string            // set while catching up: whom to ask for content
	writer  *smallWriter      // set while applying a manifest: small files written in the background
	byHash  map[string]string // content hash → a local path holding it
	skipped map[string]bool   // names this OS cannot hold, reported once
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
	p.writer = newSmallWriter(ctx, p.e.folder)
	defer func() {
		// Every write started is finished and recorded, whatever stopped
		// the manifest.
		werr := p.writer.close(p.finishWrite)
		p.writer = nil
		if werr != nil && err == nil {
			done, err = false, p.setback(werr, "")
		}
	}()
	for _, c := range order {
		err := p.change(ctx, f, c)
		if err == nil {
			err = p.writer.reap(p.finishWrite)
		}
		if err != nil {
			return false, p.setback(err, c.Path)
		}
	}
	p.acked = true
	return true, nil
}

// setback judges an error that stopped applying a manifest: a local
// obstacle is reported and retried next round (nil), anything else fails
// the round.
func (p *puller) setback(err error, path string) error {
	var we *writeError
	if errors.As(err, &we) {
		path = we.path
	}
	switch {
	case errors.Is(err, errHeldBack), errors.Is(err, errDeferred):
		return nil
	case errors.Is(err, localfs.ErrChanged):
		p.e.log.Info("a local file changed while syncing; retrying next round", "path", path)
		p.res.Waiting = append(p.res.Waiting, path+" changed during the round")
		return nil
	case isLocalProblem(err):
		p.res.Problems = append(p.res.Problems, err.Error())
		p.e.log.Warn("cannot apply a change here; it will be retried", "path", path, "err", err)
		return nil
	}
	return err
}

// writeError is a background write that failed (smallWriter).
type writeError struct {
	path string
	err  error
}

func (e *writeError) Error() string { return fmt.Sprintf("write %s: %v", e.path, e.err) }
func (e *writeError) Unwrap() error { return e.err }

// finishWrite records a small file written in the background.
func (p *puller) finishWrite(j *writeJob) error {
	if j.err != nil {
		return &writeError{path: j.path, err: j.err}
	}
	p.res.Pulled++
	p.touched = true
	p.observed(j.path, j.hash, j.abs, j.info, j.infoErr)
	p.e.noteWritten(j.path, j.hash, j.info)
	return p.e.saveState(j.path, j.ns)
}

// maxWrittenHints bounds the files a round remembers as written for the
// rescan (about 150 bytes each); past it, the rescan reads them.
const maxWrittenHints = 100_000

// noteWritten remembers a file the pull put in place, verified against
// hash and then stat'ed as fi: the rescan after the pull takes its hash
// without reading it while its stat is unchanged.
func (e *Engine) noteWritten(path, hash string, fi os.FileInfo) {
	if fi == nil || !fi.Mode().IsRegular() || len(e.written) >= maxWrittenHints {
		return
	}
	var h [32]byte
	if n, err := hex.Decode(h[:], []byte(hash)); err != nil || n != len(h) {
		return
	}
	if e.written == nil {
		e.written = map[string]state.FileRecord{}
	}
	e.written[path] = scan.KnownRecord(fi, h)
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
		for _, path := range sortedKeys(e.staged) { // key order: see sortedKeys
			st := e.staged[path]
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
		for _, path := range sortedKeys(e.stagedWants) {
			w := e.stagedWants[path]
			if err := putJSON(bs[2], []byte(path), w); err != nil {
				return err
			}
		}
		return nil
	})
	e.staged, e.stagedWants = nil, nil
	return err
}

// change decides and applies one incoming change (with, for an index
// entry, the rivals it lists): it joins the path's register and makes the
// folder hold the register's winner (conflict.go, PROTOCOL.md §6).
func (p *puller) change(ctx context.Context, f *fetcher, c *protocol.Change) error {
	e := p.e
	if e.opts.Filter != nil && !e.opts.Filter.Match(c.Path, false) {
		return nil // not synced here
	}
	if err := localfs.ValidName(c.Path, e.opts.GOOS); err != nil {
		// Legal on the relay, not on this system (Windows names): this one
		// file stays out, the rest of the update applies.
		if !p.skipped[c.Path] {
			if p.skipped == nil {
				p.skipped = map[string]bool{}
			}
			p.skipped[c.Path] = true
			p.res.Problems = append(p.res.Problems, fmt.Sprintf("%v; it cannot be created on this system and is not synced here", err))
		}
		return nil
	}
	access, err := GetAccess(e.db, c.Path)
	if err != nil {
		return err
	}
	if !access.Write {
		return nil // w-: never written by a pull
	}
	if c.Kind == protocol.KindPart {
		return p.stage(ctx, f, c)
	}
	st, err := e.loadState(c.Path)
	if err != nil {
		return err
	}
	in := append([]member{memberOf(c)}, c.Rivals...)
	reg, known := join(st.register(), in)
	if known {
		// Nothing new, unless it is the winner whose content this client
		// still lacks (Have), sent again.
		if st != nil && st.Have != nil && protocol.Compare(c.Version, st.Version) == protocol.Equal && c.Kind == protocol.KindFile && len(c.Data) > 0 {
			le, modified := p.lv.modified(c.Path, st)
			if modified {
				return nil // a local edit supersedes it
			}
			ns := *st
			ns.Have = nil
			return p.apply(ctx, f, c, &ns, le)
		}
		return nil
	}
	wi := pick(reg)
	win := reg[wi]
	rivals := make([]member, 0, len(reg)-1)
	for i := range reg {
		if i != wi {
			rivals = append(rivals, reg[i])
		}
	}
	ns := &fileState{Kind: win.Kind, Version: win.Version, Origin: win.Origin, By: win.By, Hash: win.Hash, Size: win.Size, MTime: win.MTime, Mode: win.Mode, Rivals: rivals}
	if st != nil && protocol.Compare(win.Version, st.Version) == protocol.Equal {
		// The winner stays: only the losers changed; the file is untouched.
		kept := *st
		kept.Rivals = rivals
		return e.saveState(c.Path, &kept)
	}
	le, modified := p.lv.modified(c.Path, st)
	wc := winnerChange(c, &win)
	if modified {
		if sameContent(wc, le) {
			return p.adopt(ns, c.Path, le)
		}
		switch {
		case e.opts.Mode == Download || !access.Read:
			// A download client (or an r- file) never publishes: the winner
			// replaces the local edit, which goes to the trash.
		case e.opts.Mode == Conservative && le != nil:
			return nil // never overwrite a file changed here
		case le != nil:
			// The local edit is published first (this round's push), as a
			// version concurrent with this one; the next round judges both.
			p.res.Waiting = append(p.res.Waiting, c.Path+": a local edit goes out before the incoming version is judged")
			return errDeferred
		}
		// A deletion made here and not published yet: the winner is a
		// modification, which beats it; the file comes back.
	} else if e.opts.Mode == Conservative && le != nil && st != nil && !st.Pulled {
		return nil // a file this client wrote itself is never overwritten
	}
	if !modified && le != nil && sameContent(wc, le) {
		return p.adopt(ns, c.Path, le)
	}
	// This client's own version loses but stays a rival: it is kept as a
	// conflict copy here, and retired by republishing the winner.
	if st != nil && !modified && le != nil && st.Have == nil && st.By == e.opts.Client && e.opts.Mode != Download {
		for _, r := range rivals {
			if protocol.Compare(r.Version, st.Version) == protocol.Equal {
				if err := p.conflictCopy(c.Path, le); err != nil {
					return err
				}
				le = nil
				ns.Retire = true
				break
			}
		}
	}
	return p.apply(ctx, f, wc, ns, le)
}

var errDeferred = errors.New("deferred after a local edit")

// winnerChange is the change that brings the winner: c itself, or a
// member known from before (no data: it comes from a local copy or is
// asked for).
func winnerChange(c *protocol.Change, win *member) *protocol.Change {
	if protocol.Compare(c.Version, win.Version) == protocol.Equal {
		return c
	}
	// Lacks: whoever sent c is not known to hold the winner's content, so
	// it is asked of the winner's author (see apply).
	return &protocol.Change{Path: c.Path, Kind: win.Kind, Version: win.Version, Origin: win.Origin, By: win.By, Hash: win.Hash, Size: win.Size, MTime: win.MTime, Mode: win.Mode, Lacks: true}
}

func sameContent(c *protocol.Change, le *localEntry) bool {
	if le == nil {
		return c.Kind == protocol.KindDelete
	}
	return c.Kind == le.changeKind() && c.Hash == le.Hash
}

// adopt records a winner whose content the folder already has. The
// file's mtime and exec bit are set to the winner's, so every folder ends
// the same.
func (p *puller) adopt(ns *fileState, path string, le *localEntry) error {
	if le != nil {
		if le.Kind == scan.File {
			if abs, err := p.e.folder.Resolve(path); err == nil {
				fixed := false
				if ns.Mode != 0 && (uint32(le.Mode)&0o111 != 0) != (ns.Mode&0o111 != 0) {
					fixed = os.Chmod(abs, os.FileMode(ns.Mode).Perm()) == nil
				}
				if !sameSecond(le.MTime, ns.MTime) {
					t := time.Unix(0, ns.MTime)
					fixed = os.Chtimes(abs, t, t) == nil || fixed
				}
				if fixed {
					p.touched = true
					p.observe(path, le.Hash)
				}
			}
		}
		if cur := p.lv.entries[path]; cur != nil {
			ns.MTime, ns.Mode, ns.Size = cur.MTime, uint32(cur.Mode.Perm()), cur.Size
		}
		if st, _ := p.e.loadState(path); st != nil && st.Kind == le.changeKind() && st.Hash == le.Hash {
			ns.Chunks = st.Chunks
		}
	}
	ns.Pulled = true
	return p.e.saveState(path, ns)
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

// missing records that the folder keeps what it has at path until the
// winner's content, asked from holder, arrives.
func (p *puller) missing(c *protocol.Change, ns *fileState, le *localEntry, holder, why string) error {
	h := &haveState{Kind: protocol.KindDelete}
	if le != nil {
		h = &haveState{Kind: le.changeKind(), Hash: le.Hash, MTime: le.MTime, Mode: uint32(le.Mode.Perm()), Target: le.Target}
	}
	ns.Have, ns.Retire = h, false
	if err := p.e.saveState(c.Path, ns); err != nil {
		return err
	}
	p.res.Waiting = append(p.res.Waiting, fmt.Sprintf("%s; asked for %s to be sent again", why, c.Path))
	p.e.log.Info("content missing; asked its holder to send it again", "path", c.Path, "why", why)
	return p.e.want(c.Path, c, holder)
}

// apply makes the folder hold c, recording ns as the path's state.
func (p *puller) apply(ctx context.Context, f *fetcher, c *protocol.Change, ns *fileState, le *localEntry) error {
	e := p.e
	ns.Pulled = true
	ns.Size, ns.Target = c.Size, c.Target
	if c.Mode != 0 {
		ns.Mode = c.Mode
	}
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
		if skip, err := p.makeRoom(c); skip || err != nil {
			return err
		}
		if err := e.writeSymlink(c.Path, c.Target, time.Unix(0, c.MTime), le); err != nil {
			return err
		}
		p.res.Pulled++
		p.touched = true
		p.observe(c.Path, c.Hash)
	case protocol.KindFile:
		if skip, err := p.makeRoom(c); skip || err != nil {
			return err
		}
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
		var src io.Reader
		if lp := p.localCopy(c.Hash); lp != "" {
			// The content is already here under another name (a conflict
			// copy, a copied file): no download.
			if abs, err := e.folder.Resolve(lp); err == nil {
				if fh, err := os.Open(abs); err == nil {
					defer fh.Close()
					src = &verifyReader{r: fh, h: blake3.New(), want: c.Hash}
					if c.Size == 0 {
						if fi, err := fh.Stat(); err == nil {
							ns.Size = fi.Size()
						}
					}
				}
			}
		}
		if src == nil && len(c.Data) == 0 && c.Size > 0 {
			// An index entry or an earlier rival: the content must be sent
			// again. The index being caught up from holds it, unless the
			// entry says its client waits for it too: then the author does.
			holder := p.holder
			if holder == "" || c.Lacks {
				holder = e.repo.CID(c.By)
			}
			return p.missing(c, ns, le, holder, "the content of "+c.Path+" is not in the update")
		}
		if src == nil {
			r := newFileReader(ctx, f, c.Data, c.Size > SmallFile, c.Hash)
			defer r.Close() // ends its read-ahead if the write stops early
			if r.chunked {
				var base func(string) []byte
				if st, _ := e.loadState(c.Path); st != nil && le != nil && sameAsState(le, st) {
					base = e.localChunks(c.Path, st)
				}
				r.local = func(h string) []byte {
					if base != nil {
						if b := base(h); b != nil {
							return b
						}
					}
					return e.stagedChunk(h)
				}
			}
			src = r
		}
		if c.Mode == 0 && le != nil {
			ns.Mode = uint32(le.Mode.Perm())
		}
		meta := localfs.FileMeta{Mode: os.FileMode(ns.Mode).Perm(), ModTime: time.Unix(0, c.MTime)}
		if r, ok := src.(*fileReader); ok && !r.chunked && p.writer != nil && c.Size <= SmallFile {
			// A small file from a pack: read and verified here, written in
			// the background (writers.go), recorded when written.
			data, err := io.ReadAll(io.LimitReader(r, SmallFile+1))
			if errors.Is(err, storage.ErrNotFound) {
				return p.missing(c, ns, le, f.cid, fmt.Sprintf("data of %s is not on the relay (%v)", c.Path, err))
			}
			if err != nil {
				return fmt.Errorf("read incoming data for %s: %w; nothing was replaced", c.Path, err)
			}
			ns.Chunks = nil
			return p.writer.submit(&writeJob{path: c.Path, data: data, meta: meta, expect: le.expect(), ns: ns, hash: c.Hash}, p.finishWrite)
		}
		fi, err := e.folder.WriteAtomicStat(c.Path, src, meta, le.expect())
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) && f != nil {
				// Collected, or never sent (a delta against a base this
				// client does not hold): the publisher sends it whole.
				return p.missing(c, ns, le, f.cid, fmt.Sprintf("data of %s is not on the relay (%v)", c.Path, err))
			}
			return fmt.Errorf("write %s: %w", c.Path, err)
		}
		ns.Chunks = chunkRefs(c)
		e.unstage(ns.Chunks)
		p.res.Pulled++
		p.touched = true
		p.observed(c.Path, c.Hash, "", fi, nil) // a regular file: no link to read
		e.noteWritten(c.Path, c.Hash, fi)
	}
	return e.saveState(c.Path, ns)
}

// makeRoom settles a clash between a file and a folder of the same name
// the same way on every client: the folder wins. A local file where the
// incoming path needs a folder becomes a conflict copy (pushed as a new
// file, its old name deleted); an incoming file whose name is a folder
// here is skipped, and reported (its author moves it aside in turn).
func (p *puller) makeRoom(c *protocol.Change) (skip bool, err error) {
	for i := 0; i < len(c.Path); i++ {
		if c.Path[i] != '/' {
			continue
		}
		dir := c.Path[:i]
		le := p.lv.entries[dir]
		if le == nil || le.Kind != scan.File {
			continue // a symlink is never moved: the write is refused below
		}
		st, err := p.e.loadState(dir)
		if err != nil {
			return false, err
		}
		if st != nil && st.By == c.By {
			// Its own author sends a folder there without deleting the file
			// first: not a clash of two clients; refused below.
			continue
		}
		if _, modified := p.lv.modified(dir, st); st != nil && st.By != p.e.opts.Client && !modified {
			// Another client's file: its author keeps the conflict copy;
			// here it goes to the trash (and the deletion is pushed).
			p.e.log.Warn("a file and a folder have the same name; the folder wins, the file goes to the trash (its author keeps a conflict copy)", "path", dir)
			if err := p.e.folder.Remove(dir, le.expect()); err != nil {
				return false, err
			}
			delete(p.lv.entries, dir)
			p.touched = true
			continue
		}
		p.e.log.Warn("a file and a folder have the same name; the folder wins and the file is kept as a conflict copy", "path", dir)
		if err := p.conflictCopy(dir, le); err != nil {
			return false, err
		}
	}
	abs, err := p.e.folder.Resolve(c.Path)
	if err != nil {
		return false, err
	}
	if fi, err := os.Lstat(abs); err == nil && fi.IsDir() {
		p.res.Problems = append(p.res.Problems, fmt.Sprintf("%s is a folder here; the file of that name from %s is not written (a folder wins over a file; its author keeps it as a conflict copy)", c.Path, c.By))
		return true, nil
	}
	return false, nil
}

// localCopy finds a file of the folder with the given content.
func (p *puller) localCopy(hash string) string {
	if hash == "" {
		return ""
	}
	if p.byHash == nil {
		p.byHash = make(map[string]string, len(p.lv.entries))
		for path, le := range p.lv.entries {
			if le.Kind == scan.File {
				p.byHash[le.Hash] = path
			}
		}
	}
	path := p.byHash[hash]
	if le := p.lv.entries[path]; path == "" || le == nil || le.Hash != hash {
		return ""
	}
	return path
}

// verifyReader passes a local file through, failing at its end unless
// its content has the expected hash.
type verifyReader struct {
	r    io.Reader
	h    *blake3.Hasher
	want string
}

func (v *verifyReader) Read(b []byte) (int, error) {
	n, err := v.r.Read(b)
	v.h.Write(b[:n])
	if err == io.EOF && hex.EncodeToString(v.h.Sum(nil)) != v.want {
		return n, fmt.Errorf("a local copy changed while being read: %w", localfs.ErrChanged)
	}
	return n, err
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
	p.observed(path, hash, abs, fi, err)
}

// observed records what a pull just wrote at path (fi, err: its Lstat),
// so the rescan after the pull does not take it for a local edit.
func (p *puller) observed(path, hash, abs string, fi os.FileInfo, err error) {
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
	if p.byHash != nil && le.Kind == scan.File {
		p.byHash[hash] = path
	}
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
