package engine

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/zeebo/blake3"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/localfs"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/state"
)

// localChange is a path whose local content differs from its synced state.
type localChange struct {
	path string
	le   *localEntry // nil: deleted here
	st   *fileState  // nil: new
	// retire: no local edit; the winner is republished to retire this
	// client's losing version (PROTOCOL.md §6).
	retire bool
}

// localChanges lists what changed here since the last sync, sorted by path.
//
// It walks the state in key order beside the scan's entries. A record that
// still matches its entry is judged from its raw bytes (viewState), without
// decoding or allocating: in a round with no change that is every record.
// Entries the walk does not meet are new.
func (e *Engine) localChanges(lv *localView) ([]localChange, error) {
	var out []localChange
	met := 0 // entries the walk met, marked seen
	defer func() {
		if met == 0 {
			return
		}
		for _, le := range lv.entries {
			le.seen = false
		}
	}()
	err := e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketFiles)
		if err != nil {
			return err
		}
		// The records read stay resident as the process's memory unless
		// released: a million of them are some 300 MB.
		defer tx.ReleaseMapped()
		n := 0
		if err := b.ForEach(nil, func(k, v []byte) error {
			if n++; n%releaseEvery == 0 {
				tx.ReleaseMapped()
			}
			le := lv.entries[string(k)]
			if le != nil && !le.seen {
				le.seen = true
				met++
			}
			if sv, ok := viewState(v); ok {
				if sv.kind == protocol.KindDelete && le == nil {
					return nil // a tombstone, still deleted
				}
				if sv.kind != protocol.KindDelete && le != nil && sameAs(le, sv.kind, sv.hash, sv.target, sv.mode, sv.mtime) {
					return nil // unchanged
				}
			}
			path := string(k)
			var st fileState
			if err := json.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("local state %q is damaged: %w; run `escale repair`", k, err)
			}
			if st.Retire && st.Have == nil {
				if le, mod := lv.modified(path, &st); !mod && !lv.isUncertain(path) {
					out = append(out, localChange{path: path, le: le, st: &st, retire: true})
					return nil
				}
			}
			if st.Kind == protocol.KindDelete && le == nil {
				return nil
			}
			if st.Kind != protocol.KindDelete && le == nil && e.opts.Filter != nil && !e.opts.Filter.Match(path, false) {
				return nil // no longer synced here: not a deletion
			}
			if le, mod := lv.modified(path, &st); mod {
				out = append(out, localChange{path: path, le: le, st: &st})
			}
			return nil
		}); err != nil {
			return err
		}
		if met == len(lv.entries) {
			return nil // no new path: skip the pass over the entries
		}
		for path, le := range lv.entries {
			if !le.seen && !lv.isUncertain(path) {
				out = append(out, localChange{path: path, le: le})
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, err
}

// releaseEvery is how many state records a pass reads between two
// releases of the pages read (state.Tx.ReleaseMapped): a few MB.
const releaseEvery = 16384

// pusher builds one manifest.
type pusher struct {
	e       *Engine
	res     *Result
	clock   uint64
	changes []protocol.Change
	states  map[string]*fileState
	objects []string
	sizes   []int64
	est     int64 // estimated JSON size of changes (changeJSONSize)
	pack    *packBuilder
	usage   int64 // relay usage, for the quota
	full    bool  // quota reached: the rest waits
	// parts: files sent in parts by this push (parts.go).
	parts map[string]*delivered
	// republishing: a republish makes no parts and skips no chunk.
	republishing bool
	// existing holds this client's data objects already on the relay (chunks
	// of an interrupted push), listed once when a big file is pushed.
	existing map[string]int64 // id → stored size
	cbuf     []byte           // chunkBuf
	packBufs packBuffers      // chunk pack buffers (bigio.go)
}

// maxManifestJSON is the estimated JSON size past which a push starts
// another manifest, far below what readers accept (protocol.MaxManifest):
// a change with many chunk refs is big.
const maxManifestJSON = 16 << 20

// push publishes the local changes as manifests of at most
// Options.MaxManifestChanges changes (or maxManifestJSON): for each, data,
// then the manifest, then the head (PROTOCOL.md §5.1). A first sync of a
// big tree would otherwise make one manifest too big for any reader.
func (e *Engine) push(ctx context.Context, lv *localView, res *Result) error {
	changes, err := e.localChanges(lv)
	if err != nil || len(changes) == 0 {
		return err
	}
	kept := changes[:0]
	for _, lc := range changes {
		if a, err := GetAccess(e.db, lc.path); err != nil {
			return err
		} else if !a.Read {
			continue // r-: never pushed from here
		}
		if e.opts.Settle > 0 && lc.le != nil && !lc.retire &&
			e.opts.Now().Sub(time.Unix(0, lc.le.MTime)) < e.opts.Settle {
			res.Waiting = append(res.Waiting, fmt.Sprintf("%s is being written; it goes once it has been still for %s", lc.path, e.opts.Settle))
			continue
		}
		if err := localfs.ValidName(lc.path, localfs.Portable); err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("%v; it is not synced", err))
			continue
		}
		if !utf8.ValidString(lc.path) {
			// Manifests carry names as UTF-8 text: such a name would arrive
			// mangled on the other side.
			res.Problems = append(res.Problems, fmt.Sprintf("%q is not a valid UTF-8 name and is not synced; rename it", lc.path))
			continue
		}
		kept = append(kept, lc)
	}
	changes = e.holdBackMassDelete(kept, lv, res)
	if len(changes) == 0 {
		return nil
	}
	p := &pusher{e: e, res: res, states: map[string]*fileState{}}
	if p.clock, err = e.metaU64("clock"); err != nil {
		return err
	}
	if e.opts.Quota > 0 {
		if p.usage, err = e.relayUsage(ctx); err != nil {
			return err
		}
		defer func() { res.RelayUsage = p.usage }()
	}
	p.pack = newPackBuilder(e.packSize())
	renamedFrom := renames(changes)
	together := keptTogether(changes, renamedFrom)
	var (
		pullers []string
		need    int
		open    = -1 // the last change that must join the manifest being built
	)
	// flush publishes what p holds, then p starts the next manifest.
	flush := func() error {
		if err := p.flushPack(ctx); err != nil {
			return err
		}
		if len(p.changes) == 0 {
			return nil
		}
		if need == 0 { // the same for every manifest of the push
			var err error
			if pullers, need, err = e.expectedPullers(ctx); err != nil {
				return err
			}
		}
		if err := e.publish(ctx, p, pullers, need, true); err != nil {
			return err
		}
		p = p.next()
		return nil
	}
	for i, lc := range changes {
		if p.full {
			break
		}
		if err := p.add(ctx, lc, renamedFrom[lc.path]); err != nil {
			return err
		}
		open = max(open, together[i])
		if open <= i && i+1 < len(changes) && p.atCap() {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// atCap reports whether the manifest being built is as big as one gets.
func (p *pusher) atCap() bool {
	n := len(p.changes) + len(p.pack.pending)
	est := p.est + p.pack.est + int64(len(p.objects))*32
	return n >= p.e.opts.MaxManifestChanges || est >= maxManifestJSON
}

// next is a pusher for the manifest after p's, once p's is published. What
// the push as a whole tracks carries over: the clock (publish recorded it),
// relay usage and the quota, the buffers, this client's objects on the
// relay.
func (p *pusher) next() *pusher {
	p.pack.reset()
	return &pusher{e: p.e, res: p.res, clock: p.clock, states: map[string]*fileState{}, pack: p.pack,
		usage: p.usage, full: p.full, existing: p.existing, cbuf: p.cbuf, packBufs: p.packBufs}
}

// keptTogether returns, for the index of a change that must share its
// manifest with later ones, the index of the last of them (a cut never
// falls in between):
//   - a rename and the old path's tombstone: the puller moves the file only
//     when both come in one manifest (pull.go, tryMove);
//   - a folder that became a file or symlink and the deletions below it: a
//     puller applies a manifest's deletions first, so the folder is gone
//     when the file is written; a manifest of its own, the file would meet
//     the folder and be refused.
//
// Changes are sorted by path, so such a group may span many changes: the
// manifest then grows past the cap.
func keptTogether(changes []localChange, renamedFrom map[string]string) map[int]int {
	out := map[int]int{}
	join := func(i, j int) {
		lo, hi := min(i, j), max(i, j)
		if end, ok := out[lo]; !ok || hi > end {
			out[lo] = hi
		}
	}
	if len(renamedFrom) > 0 {
		at := make(map[string]int, 2*len(renamedFrom))
		for to, from := range renamedFrom {
			at[to], at[from] = -1, -1
		}
		for i, lc := range changes {
			if _, ok := at[lc.path]; ok {
				at[lc.path] = i
			}
		}
		for to, from := range renamedFrom {
			if at[to] >= 0 && at[from] >= 0 {
				join(at[to], at[from])
			}
		}
	}
	// lastDel: for each folder above a deleted path, its last deletion.
	lastDel := map[string]int{}
	for i, lc := range changes {
		if lc.le != nil {
			continue
		}
		for dir := path.Dir(lc.path); dir != "."; dir = path.Dir(dir) {
			lastDel[dir] = i
		}
	}
	if len(lastDel) > 0 {
		for i, lc := range changes {
			if end, ok := lastDel[lc.path]; ok && lc.le != nil && end > i {
				join(i, end)
			}
		}
	}
	return out
}

// changeJSONSize estimates, on the high side for ordinary names, the bytes
// c takes in a manifest's JSON (TestManifestSizeEstimate).
func changeJSONSize(c *protocol.Change) int64 {
	n := 200 + 2*(len(c.Path)+len(c.From)+len(c.Target)+len(c.By)) + 50*(len(c.Version)+len(c.Origin)) + 180*len(c.Data)
	return int64(n)
}

// publish writes the manifest of what p uploaded — data first, then the
// manifest, then the head (PROTOCOL.md §5.1) — and records it locally.
// keepStates is false for a republish, which makes no new version.
func (e *Engine) publish(ctx context.Context, p *pusher, pullers []string, need int, keepStates bool) error {
	seq, err := e.metaU64("seq")
	if err != nil {
		return err
	}
	seq++
	// Note the intent first: a crash after the head is written but before the
	// local state is, must be recognised as ours on restart (checkOwnHeads).
	if err := e.db.Update(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketMeta)
		if err != nil {
			return err
		}
		return putU64(b, "publishing", seq)
	}); err != nil {
		return err
	}
	m := &protocol.Manifest{V: protocol.Version, Client: e.opts.Client, Seq: seq, Time: e.opts.Now().UTC(), Clock: p.clock, Pullers: pullers, Need: need, Changes: p.changes, Objects: p.objects}
	size, err := e.repo.PutJSON(ctx, envelope.KindManifest, protocol.ManifestName(e.cid, seq), m)
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := e.repo.PutHead(ctx, protocol.Head{CID: e.cid, Seq: seq}); err != nil {
		return fmt.Errorf("write head: %w", err)
	}
	if seq > 1 {
		// The new head is in place; the old one only costs listing space.
		_ = e.relay.Delete(ctx, protocol.Head{CID: e.cid, Seq: seq - 1}.Name())
	}
	p.res.BytesUp += size
	if e.opts.Progress != nil {
		e.opts.Progress(size)
	}
	if keepStates {
		p.res.Pushed += len(p.changes)
	}
	out := outstanding{Seq: seq, Pullers: pullers, Need: need, Objects: p.objects, Sizes: p.sizes, Time: m.Time.UnixNano(), Manifest: size}
	return e.db.Update(func(tx *state.Tx) error {
		bs, err := buckets(tx, bucketMeta, bucketFiles, bucketOut, bucketDirty, bucketWants)
		if err != nil {
			return err
		}
		if err := putU64(bs[0], "seq", seq); err != nil {
			return err
		}
		if err := bs[0].Delete([]byte("publishing")); err != nil {
			return err
		}
		if keepStates {
			if err := putU64(bs[0], "clock", p.clock); err != nil {
				return err
			}
			if err := recordParts(tx, p); err != nil {
				return err
			}
			for _, path := range sortedKeys(p.states) {
				st := p.states[path]
				if err := putJSON(bs[1], []byte(path), st); err != nil {
					return err
				}
				if err := bs[3].Put([]byte(path), nil); err != nil {
					return err
				}
				// A local version supersedes content asked for.
				if err := bs[4].Delete([]byte(path)); err != nil {
					return err
				}
			}
		}
		return putJSON(bs[2], u64key(seq), &out)
	})
}

// renames pairs deleted paths with new paths of the same content.
func renames(changes []localChange) map[string]string {
	gone := map[string]string{} // hash → deleted path
	for _, lc := range changes {
		if lc.le == nil && lc.st != nil && lc.st.Kind == protocol.KindFile {
			gone[lc.st.Hash] = lc.path
		}
	}
	out := map[string]string{}
	for _, lc := range changes {
		if lc.le != nil && lc.st == nil && lc.le.changeKind() == protocol.KindFile {
			if from, ok := gone[lc.le.Hash]; ok {
				out[lc.path] = from
				delete(gone, lc.le.Hash)
			}
		}
	}
	return out
}

// holdBackMassDelete drops the deletions when there are too many of them.
func (e *Engine) holdBackMassDelete(changes []localChange, lv *localView, res *Result) []localChange {
	dels := 0
	for _, lc := range changes {
		if lc.le == nil {
			dels++
		}
	}
	synced := lv.files + dels
	if e.opts.AllowMassDelete || dels <= max(massDeleteMin, synced*e.opts.MaxDelete/100) {
		return changes
	}
	e.log.Warn("mass deletion held back", "deleted", dels, "of", synced)
	res.Waiting = append(res.Waiting, fmt.Sprintf("mass deletion held back: %d of %d files were deleted here, more than %d%%; run `escale sync --allow-mass-delete` if that is intended", dels, synced, e.opts.MaxDelete))
	kept := changes[:0]
	for _, lc := range changes {
		if lc.le != nil {
			kept = append(kept, lc)
		}
	}
	return kept
}

func (e *Engine) packSize() int64 {
	n := e.opts.MaxPackSize
	if e.opts.Quota > 0 {
		n = min(n, e.opts.Quota/2)
	}
	return max(n, 64<<10)
}

// add turns one local change into a manifest entry, uploading its data.
func (p *pusher) add(ctx context.Context, lc localChange, from string) error {
	e := p.e
	// A local edit builds on every version this client knows of the path:
	// it resolves a conflict the way the user left it.
	var base protocol.Vector
	for _, m := range lc.st.register() {
		base = protocol.Merge(base, m.Version)
	}
	p.clock = max(p.clock, base.Max()) + 1
	c := protocol.Change{Path: lc.path, Version: base.Bump(e.cid, p.clock), By: e.opts.Client}
	if lc.retire {
		// The winner's content, under a vector above this client's losing
		// version: it keeps the winner's origin and author.
		c.Origin, c.By = lc.st.Origin, lc.st.By
		if c.Origin == nil {
			c.Origin = lc.st.Version
		}
	}
	if lc.le == nil {
		c.Kind = protocol.KindDelete
		p.commit(c, nil)
		return nil
	}
	le := lc.le
	c.Kind, c.Hash, c.Size, c.MTime, c.Mode = le.changeKind(), le.Hash, le.Size, le.MTime, uint32(le.Mode.Perm())
	if lc.retire {
		c.MTime = lc.st.MTime // the winner's, to the nanosecond
	}
	if c.Kind == protocol.KindSymlink {
		c.Target, c.Size = le.Target, 0
		p.commit(c, nil)
		return nil
	}
	c.From = from
	var err error
	if le.Size <= SmallFile {
		err = p.addSmall(ctx, &c)
	} else {
		err = p.addBig(ctx, &c, lc.st)
	}
	if errors.Is(err, errUnstable) {
		p.e.log.Info("a file changed while being read; it goes next round", "path", lc.path)
		p.res.Waiting = append(p.res.Waiting, lc.path+" changed while being read")
		return nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil // gone since the scan: the next round sees the deletion
	}
	return err
}

// addPart publishes the chunks of a file sent so far, when the rest does
// not fit: pullers keep them aside, and their acknowledgements free the
// relay for the next ones (parts.go).
func (p *pusher) addPart(c *protocol.Change, sent []protocol.Ref) {
	if len(sent) == 0 || p.republishing {
		return
	}
	p.changes = append(p.changes, protocol.Change{Path: c.Path, Kind: protocol.KindPart, Version: c.Version, By: c.By, Hash: c.Hash, Size: c.Size, Data: sent})
	p.est += changeJSONSize(&p.changes[len(p.changes)-1])
	d := &delivered{Hash: c.Hash}
	for _, r := range sent {
		d.Chunks = append(d.Chunks, r.Hash)
	}
	if p.parts == nil {
		p.parts = map[string]*delivered{}
	}
	p.parts[c.Path] = d
	p.res.Waiting = append(p.res.Waiting, fmt.Sprintf("%s is bigger than the relay's free space: sent in parts (%d chunks now)", c.Path, len(sent)))
}

func (p *pusher) commit(c protocol.Change, chunks []protocol.Ref) {
	st := stateOf(&c)
	st.Chunks = chunks
	p.changes = append(p.changes, c)
	p.est += changeJSONSize(&c)
	p.states[c.Path] = st
}

var errUnstable = errors.New("file changed while being read")

// readLocal reads a small file whole and checks it is what the scan hashed.
func (p *pusher) readLocal(path, want string, size int64) ([]byte, error) {
	abs, err := p.e.folder.Resolve(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// One read into a buffer of the scanned size (+1 to see growth), not
	// io.ReadAll's doubling from 512 bytes.
	data := make([]byte, size+1)
	n, err := io.ReadFull(f, data)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	data = data[:n]
	sum := blake3.Sum256(data)
	if hex.EncodeToString(sum[:]) != want {
		return nil, errUnstable
	}
	return data, nil
}

func (p *pusher) addSmall(ctx context.Context, c *protocol.Change) error {
	data, err := p.readLocal(c.Path, c.Hash, c.Size)
	if err != nil {
		return err
	}
	stored, z := p.e.codec.compress(nil, data)
	if p.pack.size()+int64(len(stored)) > p.pack.limit && p.pack.size() > 0 {
		if err := p.flushPack(ctx); err != nil {
			return err
		}
		if p.full {
			return nil
		}
	}
	ref := p.pack.add(stored, z, int64(len(data)))
	c.Data = []protocol.Ref{ref}
	p.pack.pending = append(p.pack.pending, *c)
	p.pack.est += changeJSONSize(c)
	return nil
}

// flushPack uploads the pack being built and commits its files.
func (p *pusher) flushPack(ctx context.Context) error {
	pb := p.pack
	if pb.size() == 0 {
		return nil
	}
	if !p.fits(pb.size() + 4096) {
		// Waiting for space: these files go in a later round.
		pb.reset()
		return nil
	}
	id := envelope.RandomName()
	for i := range pb.pending {
		pb.pending[i].Data[0].Obj = id
	}
	// Noted before the upload: after a crash, cleanOrphans deletes it by
	// name even when the listing does not show it yet.
	if err := p.e.noteChunk(id, 0); err != nil {
		return err
	}
	n, err := p.e.repo.PutStream(ctx, envelope.KindPack, protocol.DataName(p.e.cid, id), func(w io.Writer) error {
		_, err := w.Write(pb.buf.Bytes())
		return err
	})
	if err != nil {
		return fmt.Errorf("upload pack: %w", err)
	}
	p.uploaded(id, n)
	for _, c := range pb.pending {
		p.commit(c, nil)
	}
	pb.reset()
	return nil
}

func (p *pusher) uploaded(id string, n int64) {
	p.objects = append(p.objects, id)
	p.sizes = append(p.sizes, n)
	p.usage += n
	p.res.BytesUp += n
	p.res.ObjectsUp++
	if p.e.opts.Progress != nil {
		p.e.opts.Progress(n)
	}
}

// fits checks the quota before an upload of n bytes.
func (p *pusher) fits(n int64) bool {
	q := p.e.opts.Quota
	if q <= 0 || p.usage+n <= q {
		return true
	}
	if !p.full {
		p.full = true
		p.res.Waiting = append(p.res.Waiting, fmt.Sprintf("waiting for relay space: %s used of the %s quota; the rest is sent once other clients have pulled", config.HumanSize(p.usage), config.HumanSize(q)))
	}
	return false
}

// addBig chunks a big file and uploads the chunks the relay does not hold
// and the pullers' base version does not have.
func (p *pusher) addBig(ctx context.Context, c *protocol.Change, st *fileState) error {
	abs, err := p.e.folder.Resolve(c.Path)
	if err != nil {
		return err
	}
	f, err := os.Open(abs)
	if err != nil {
		return err
	}
	defer f.Close()
	have := map[string]bool{}
	if st != nil {
		for _, r := range st.Chunks {
			have[r.Hash] = true
		}
	}
	if !p.republishing {
		// Chunks sent earlier as parts wait in the pullers' staging folders.
		sent, err := p.e.deliveredChunks(c.Path, c.Hash)
		if err != nil {
			return err
		}
		for h := range sent {
			have[h] = true
		}
	}
	var sent []protocol.Ref // this push's chunks of the file, for a part
	var limit int64
	if p.e.opts.Quota > 0 {
		limit = p.e.opts.Quota / 2
	}
	// The file must still be what the scan hashed. When the scan's record
	// vouches for it before and after the read (scan.Scanner.Vouches), it
	// is, by the rule the hash cache lives by; otherwise it is hashed again
	// as it is read. Either way a puller checks the whole file once more.
	var src io.Reader = f
	var whole *blake3.Hasher
	vouched := p.e.vouches(c.Path, f, c.Hash)
	if !vouched {
		whole = blake3.New()
		src = io.TeeReader(f, whole)
	}
	ch := p.e.chunk.new(src, limit)
	// Chunks are judged in file order here (delta, resume, quota); the new
	// ones fill chunk packs that go up behind, uploadAhead at a time
	// (bigio.go).
	u := p.newPackUploads(ctx, c.Path)
	defer u.close()
	target := p.e.opts.ChunkPackSize
	if limit > 0 && target > limit {
		target = limit // a pack must fit a small quota, as a chunk does
	}
	var (
		sums  [][32]byte // every chunk of the file, in order
		sizes []int64
		pk    chunkPack
		total int64
		loc   = map[[32]byte]protocol.Ref{} // where this push put each new chunk
	)
	// flush sends the pack being filled; false when the quota stops the
	// file there (the part holds what is up: every upload has ended).
	flush := func() (bool, error) {
		if len(pk.hashes) == 0 {
			return true, nil
		}
		buf := pk.buf
		need := int64(len(buf)) + 4096
		if err := u.room(need); err != nil {
			return false, err
		}
		if !p.fits(need) {
			u.release(buf)
			pk = chunkPack{}
			return false, nil
		}
		id := p.chunkPackID(&pk)
		var off int64
		for i, sum := range pk.hashes {
			n := pk.sizes[i]
			ref := protocol.Ref{Obj: id, Off: off, Len: n, Size: n, Hash: hex.EncodeToString(sum[:])}
			loc[sum] = ref
			sent = append(sent, ref)
			off += n
		}
		pk = chunkPack{}
		if p.onRelay(ctx, id) {
			u.release(buf)
			p.objects = append(p.objects, id) // reused: now referenced, so kept
			p.sizes = append(p.sizes, 0)
			return true, nil
		}
		// Noted before the upload: after a crash, cleanOrphans deletes it by
		// name even when the listing does not show it yet.
		if err := p.e.noteChunk(id, 0); err != nil {
			return false, err
		}
		return true, u.start(id, buf, need)
	}
	for {
		chunk, err := ch.Next(p.chunkBuf())
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", c.Path, err)
		}
		sum := blake3.Sum256(chunk.Data)
		h := hex.EncodeToString(sum[:])
		sums = append(sums, sum)
		sizes = append(sizes, int64(chunk.Length))
		total += int64(chunk.Length)
		if have[h] {
			continue
		}
		have[h] = true
		if len(pk.hashes) > 0 && int64(len(pk.buf)+len(chunk.Data)) > target {
			if ok, err := flush(); err != nil {
				return err
			} else if !ok {
				p.addPart(c, sent)
				return nil
			}
		}
		if pk.buf == nil {
			if pk.buf, err = u.buffer(); err != nil {
				return err
			}
		}
		pk.buf = append(pk.buf, chunk.Data...)
		pk.hashes = append(pk.hashes, sum)
		pk.sizes = append(pk.sizes, int64(chunk.Length))
		if err := u.poll(); err != nil {
			return err
		}
	}
	if ok, err := flush(); err != nil {
		return err
	} else if !ok {
		p.addPart(c, sent)
		return nil
	}
	if err := u.wait(); err != nil {
		return err
	}
	p.e.hook("read", c.Path)
	if total != c.Size {
		return errUnstable
	}
	if vouched {
		if !p.e.vouches(c.Path, f, c.Hash) {
			return errUnstable
		}
	} else {
		p.res.HashedBytes += total
		if hex.EncodeToString(whole.Sum(nil)) != c.Hash {
			return errUnstable
		}
	}
	// Chunks the pullers hold (the base version, parts sent earlier) keep
	// the name a version 1 chunk object would have: a puller that lacks one
	// finds no such object and asks for the file again (§9).
	refs := make([]protocol.Ref, len(sums))
	for i, sum := range sums {
		if r, ok := loc[sum]; ok {
			refs[i] = r
		} else {
			refs[i] = protocol.Ref{Obj: p.e.repo.ObjectID([]byte("chunk"), sum[:]), Size: sizes[i], Hash: hex.EncodeToString(sum[:])}
		}
	}
	c.Data = refs
	p.commit(*c, refs)
	return nil
}

// chunkBuf is the buffer chunks are cut into, one per push.
func (p *pusher) chunkBuf() []byte {
	if p.cbuf == nil {
		p.cbuf = make([]byte, chunkMax)
	}
	return p.cbuf
}

// onRelay reports whether this client's chunk pack id is on the relay
// already, complete: packs are named by their chunks, so an interrupted push
// resumes pack by pack. Only packs whose upload finished (noted in the local
// state) count, and only if the relay still has them at that size: a cut
// upload may have left a truncated object under the name.
func (p *pusher) onRelay(ctx context.Context, id string) bool {
	if p.existing == nil {
		p.existing = map[string]int64{}
		entries, err := p.e.relay.List(ctx, protocol.DataDir(p.e.cid))
		if err != nil {
			return false // uploading again is always safe
		}
		for _, en := range entries {
			p.existing[path.Base(en.Name)] = en.Size
		}
	}
	size, listed := p.existing[id]
	if !listed {
		return false
	}
	done, err := p.e.chunkUploaded(id)
	return err == nil && done > 0 && done == size
}

// packBuilder gathers small files into one pack.
type packBuilder struct {
	buf     bytes.Buffer
	limit   int64
	pending []protocol.Change
	est     int64 // changeJSONSize of pending
}

func newPackBuilder(limit int64) *packBuilder { return &packBuilder{limit: limit} }

func (pb *packBuilder) size() int64 { return int64(pb.buf.Len()) }

func (pb *packBuilder) add(stored []byte, z bool, size int64) protocol.Ref {
	ref := protocol.Ref{Off: int64(pb.buf.Len()), Len: int64(len(stored)), Size: size, Z: z}
	pb.buf.Write(stored)
	return ref
}

func (pb *packBuilder) reset() {
	pb.buf.Reset()
	pb.pending = pb.pending[:0]
	pb.est = 0
}
