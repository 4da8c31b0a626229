package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/zeebo/blake3"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/state"
	"github.com/escale-sync/escale/pkg/storage"
)

// indexMeta is the local record of the published index (PROTOCOL.md §9).
type indexMeta struct {
	N     int               `json:"n"`     // pages
	Gen   uint64            `json:"gen"`   // generation of the last publish
	Pages map[string]uint64 `json:"pages"` // page name → generation
	Root  uint64            `json:"root"`  // generation of the current root
	// Seq: the last own manifest the root covers. A republish (§9) changes
	// no page but must be covered too: it is collected once its asker
	// acknowledges it, and a client that never read it can only catch up
	// from an index whose root covers it.
	Seq uint64 `json:"seq,omitempty"`
}

// indexPages picks the page count: one page for small trees, then enough
// pages of about 2,000 entries that one change rewrites one small page.
func (e *Engine) indexPages(files int) int {
	if e.opts.IndexBy == "hash" && e.opts.IndexN > 0 {
		return e.opts.IndexN
	}
	n := 1
	for n*2000 < files && n < 4096 {
		n *= 2
	}
	return n
}

func (e *Engine) pageOf(p string, n int) int {
	h := blake3.New()
	nk := e.repo.NameKey()
	h.Write(nk[:])
	if e.opts.IndexBy == "topdir" && e.opts.IndexN > 0 {
		// Paths under the same top folders share a page.
		parts := strings.SplitN(p, "/", e.opts.IndexN+1)
		if len(parts) > e.opts.IndexN {
			p = strings.Join(parts[:e.opts.IndexN], "/")
		} else {
			p = path.Dir(p)
		}
	}
	h.Write([]byte(p))
	var sum [8]byte
	h.Digest().Read(sum[:])
	return int(binary.BigEndian.Uint64(sum[:]) % uint64(n))
}

func (e *Engine) pageName(n, page int) string {
	return e.repo.ObjectID([]byte("index page"), []byte(strconv.Itoa(n)), []byte(strconv.Itoa(page)))
}

func pageKey(page int, p string) []byte { return []byte(fmt.Sprintf("%05d/%s", page, p)) }

// publishIndex rewrites the index pages holding paths changed since the
// last publish, then the root, then drops the old generations.
func (e *Engine) publishIndex(ctx context.Context, files int) error {
	var meta indexMeta
	var dirty []string
	var seq, clock uint64
	if err := e.db.View(func(tx *state.Tx) error {
		bs, err := buckets(tx, bucketMeta, bucketDirty)
		if err != nil {
			return err
		}
		if _, err := getJSON(bs[0], []byte("index"), &meta); err != nil {
			return err
		}
		seq, clock = getU64(bs[0], "seq"), getU64(bs[0], "clock")
		return bs[1].ForEach(nil, func(k, _ []byte) error {
			dirty = append(dirty, string(k))
			return nil
		})
	}); err != nil {
		return err
	}
	n := e.indexPages(files)
	rebuild := meta.N != n
	if len(dirty) == 0 && !rebuild && meta.Root != 0 && meta.Seq >= seq {
		return nil
	}
	pages := map[int]bool{}
	if err := e.db.Update(func(tx *state.Tx) error {
		bs, err := buckets(tx, bucketPage, bucketFiles)
		if err != nil {
			return err
		}
		if rebuild {
			var keys [][]byte
			if err := bs[0].ForEach(nil, func(k, _ []byte) error {
				keys = append(keys, append([]byte{}, k...))
				return nil
			}); err != nil {
				return err
			}
			for _, k := range keys {
				if err := bs[0].Delete(k); err != nil {
					return err
				}
			}
			dirty = dirty[:0]
			if err := bs[1].ForEach(nil, func(k, _ []byte) error {
				dirty = append(dirty, string(k))
				return nil
			}); err != nil {
				return err
			}
			for i := range n {
				pages[i] = true
			}
		}
		keys := make([][]byte, 0, len(dirty))
		for _, p := range dirty {
			pg := e.pageOf(p, n)
			pages[pg] = true
			keys = append(keys, pageKey(pg, p))
		}
		// In key order: bbolt shifts its leaf for every out-of-order insert
		// of a transaction, which made a big first sync quadratic.
		slices.SortFunc(keys, bytes.Compare)
		for _, k := range keys {
			if err := bs[0].Put(k, nil); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if meta.Root == 0 {
		for i := range n {
			pages[i] = true
		}
	}
	gen := meta.Gen + 1
	newPages := map[string]uint64{}
	if !rebuild {
		for k, v := range meta.Pages {
			newPages[k] = v
		}
	}
	for pg := range pages {
		page, err := e.pageEntries(pg)
		if err != nil {
			return err
		}
		name := e.pageName(n, pg)
		if _, err := e.repo.PutJSON(ctx, envelope.KindIndex, protocol.IndexPageName(e.cid, name, gen), page); err != nil {
			return fmt.Errorf("write index page: %w", err)
		}
		newPages[name] = gen
	}
	root := protocol.IndexRoot{V: protocol.Version, Seq: seq, Clock: clock}
	for id, g := range newPages {
		root.Pages = append(root.Pages, protocol.PageRef{ID: id, Gen: g})
	}
	sort.Slice(root.Pages, func(i, j int) bool { return root.Pages[i].ID < root.Pages[j].ID })
	if _, err := e.repo.PutJSON(ctx, envelope.KindIndex, protocol.IndexRootName(e.cid, gen), &root); err != nil {
		return fmt.Errorf("write index root: %w", err)
	}
	// The new root is in place: older generations can go.
	if meta.Root != 0 {
		_ = e.relay.Delete(ctx, protocol.IndexRootName(e.cid, meta.Root))
	}
	for id, g := range meta.Pages {
		if newPages[id] != g {
			_ = e.relay.Delete(ctx, protocol.IndexPageName(e.cid, id, g))
		}
	}
	meta = indexMeta{N: n, Gen: gen, Pages: newPages, Root: gen, Seq: seq}
	return e.db.Update(func(tx *state.Tx) error {
		bs, err := buckets(tx, bucketMeta, bucketDirty)
		if err != nil {
			return err
		}
		for _, p := range dirty {
			if err := bs[1].Delete([]byte(p)); err != nil {
				return err
			}
		}
		return putJSON(bs[0], []byte("index"), &meta)
	})
}

// pageEntries lists the entries of one page from local state.
func (e *Engine) pageEntries(pg int) (*protocol.IndexPage, error) {
	page := &protocol.IndexPage{V: protocol.Version, Entries: []protocol.Change{}}
	prefix := []byte(fmt.Sprintf("%05d/", pg))
	err := e.db.View(func(tx *state.Tx) error {
		bs, err := buckets(tx, bucketPage, bucketFiles)
		if err != nil {
			return err
		}
		return bs[0].ForEach(prefix, func(k, _ []byte) error {
			p := string(k[len(prefix):])
			var st fileState
			ok, err := getJSON(bs[1], []byte(p), &st)
			if err != nil || !ok {
				return err
			}
			c := st.change(p)
			// Known here, content still awaited: whoever catches up from
			// this index asks the author instead of this client.
			c.Lacks = st.Have != nil && st.Kind == protocol.KindFile
			page.Entries = append(page.Entries, c)
			return nil
		})
	})
	return page, err
}

// readIndex reads client cid's newest index: its root and every entry.
func (e *Engine) readIndex(ctx context.Context, cid string) (*protocol.IndexRoot, []protocol.Change, error) {
	entries, err := e.relay.List(ctx, protocol.IndexDir(cid))
	if err != nil {
		return nil, nil, err
	}
	var best uint64
	for _, en := range entries {
		base := path.Base(en.Name)
		if g, ok := strings.CutPrefix(base, "root."); ok {
			if n, ok := protocol.ParseSeqName(g); ok && n > best {
				best = n
			}
		}
	}
	if best == 0 {
		return nil, nil, nil
	}
	var root protocol.IndexRoot
	if err := e.repo.GetJSON(ctx, envelope.KindIndex, protocol.IndexRootName(cid, best), protocol.MaxSmallObj, &root); err != nil {
		return nil, nil, fmt.Errorf("index root of client %s: %w", cid, err)
	}
	if !protocol.Readable(root.V) {
		return nil, nil, fmt.Errorf("index root of client %s: %w: version %d", cid, protocol.ErrInvalid, root.V)
	}
	var all []protocol.Change
	seen := map[string]bool{}
	for _, ref := range root.Pages {
		if !protocol.ValidObjectID(ref.ID) {
			return nil, nil, fmt.Errorf("index root of client %s: %w: bad page id", cid, protocol.ErrInvalid)
		}
		var page protocol.IndexPage
		name := protocol.IndexPageName(cid, ref.ID, ref.Gen)
		if err := e.repo.GetJSON(ctx, envelope.KindIndex, name, protocol.MaxManifest, &page); err != nil {
			return nil, nil, fmt.Errorf("index page %s: %w", name, err)
		}
		if err := page.Validate(e.opts.GOOS); err != nil {
			return nil, nil, fmt.Errorf("index page %s: %w", name, err)
		}
		for _, c := range page.Entries {
			if seen[c.Path] {
				return nil, nil, fmt.Errorf("index of client %s: %w: %q on two pages", cid, protocol.ErrInvalid, c.Path)
			}
			seen[c.Path] = true
			all = append(all, c)
		}
	}
	return &root, all, nil
}

// wantItem is content this client asked a holder to republish.
type wantItem struct {
	Hash   string `json:"hash"`
	Holder string `json:"holder"`
	// Rounds the request has waited on this holder, and since when (Unix
	// ns; see rotateWants).
	Rounds int   `json:"r,omitempty"`
	Since  int64 `json:"t,omitempty"`
}

// wantPatience is how many rounds, at least, a want waits on one holder
// before it is addressed to the next client; Options.WantPatience is how
// long, at least.
const wantPatience = 4

// DefaultWantPatience: twice the default max_poll, so an idle holder
// polls at least once before its request moves on.
const DefaultWantPatience = 10 * time.Minute

// rotateWants addresses a want that its holder has not served for
// wantPatience rounds and Options.WantPatience to the next client of the
// repository, in turn: the
// holder asked first is the likeliest to have the content, but it may have
// lost it or be gone for good, and any client holding the same version
// serves it. A holder that still waits for the content itself keeps the
// item pending and serves it when it can (serveWants), so rotating costs one
// rewrite of the request, never a lost one.
func (e *Engine) rotateWants(heads []protocol.Head) error {
	var peers []string
	seen := map[string]bool{e.cid: true}
	for _, h := range heads {
		if !seen[h.CID] {
			seen[h.CID] = true
			peers = append(peers, h.CID)
		}
	}
	sort.Strings(peers)
	if n, err := e.wantCount(); err != nil || n == 0 {
		return err // no write transaction on a round with nothing wanted
	}
	return e.db.Update(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketWants)
		if err != nil {
			return err
		}
		type kv struct {
			k  []byte
			it wantItem
		}
		var all []kv
		if err := b.ForEach(nil, func(k, v []byte) error {
			var it wantItem
			if err := json.Unmarshal(v, &it); err != nil {
				return err
			}
			all = append(all, kv{append([]byte(nil), k...), it})
			return nil
		}); err != nil {
			return err
		}
		for _, x := range all {
			it := x.it
			it.Rounds++
			now := e.opts.Now().UnixNano()
			if it.Since == 0 {
				it.Since = now
			}
			if it.Rounds >= wantPatience && now-it.Since >= int64(e.opts.WantPatience) && len(peers) > 0 {
				i := sort.SearchStrings(peers, it.Holder)
				if i < len(peers) && peers[i] == it.Holder {
					i++
				}
				next := peers[i%len(peers)]
				if next != it.Holder {
					e.log.Info("content still missing; asking another client for it", "path", string(x.k), "asked", it.Holder, "now", next)
				}
				it.Holder, it.Rounds, it.Since = next, 0, now
			}
			if err := putJSON(b, x.k, &it); err != nil {
				return err
			}
		}
		return nil
	})
}

// want records that path's content must be republished by holder.
// It is staged with the file states (see saveState).
func (e *Engine) want(p string, c *protocol.Change, holder string) error {
	if e.stagedWants == nil {
		e.stagedWants = map[string]*wantItem{}
	}
	e.stagedWants[p] = &wantItem{Hash: c.Hash, Holder: holder, Since: e.opts.Now().UnixNano()}
	return nil
}

// wantsFrom lists what this client asks holder to republish: path → hash.
func (e *Engine) wantsFrom(holder string) (map[string]string, error) {
	out := map[string]string{}
	err := e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketWants)
		if err != nil {
			return err
		}
		return b.ForEach(nil, func(k, v []byte) error {
			var it wantItem
			if err := json.Unmarshal(v, &it); err != nil {
				return err
			}
			if it.Holder == holder {
				out[string(k)] = it.Hash
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read the requests to client %s: %w", holder, err)
	}
	return out, nil
}

// askAgain makes the next publishWants write the request again, unchanged,
// under a new generation, when this client, having caught up from holder's
// index, still asks holder for content it asked for before the catch-up
// (before: wantsFrom(holder) then). The catch-up skips, and acknowledges,
// every manifest the index covers, and holder's answer may be among them
// (addressed to this client alone, so it was still on the relay): holder
// read the request once and marked it seen, and would never read the same
// request again. The new generation makes it read the request and send the
// content once more; the skipped answer goes with the acknowledgement
// (holder collects it), so the relay does not keep the content twice for
// long. It costs one request write per such catch-up, and a catch-up needs
// a manifest of holder collected before this client read it: no loop.
func (e *Engine) askAgain(holder string, before map[string]string) error {
	if len(before) == 0 {
		return nil
	}
	again := false
	err := e.db.Update(func(tx *state.Tx) error {
		bs, err := buckets(tx, bucketWants, bucketMeta)
		if err != nil {
			return err
		}
		for p, hash := range before {
			var it wantItem
			ok, err := getJSON(bs[0], []byte(p), &it)
			if err != nil {
				return err
			}
			if ok && it.Holder == holder && it.Hash == hash {
				again = true
				break
			}
		}
		if !again {
			return nil
		}
		return bs[1].Delete([]byte("wantsum")) // publishWants compares with it
	})
	if err != nil {
		return fmt.Errorf("ask client %s again: %w", holder, err)
	}
	if again {
		e.log.Info("content asked for before is still missing after catching up from its holder's index; asking again", "holder", holder)
	}
	return nil
}

// publishWants writes the republish request when it changed, or when
// askAgain asks for it.
func (e *Engine) publishWants(ctx context.Context) error {
	w := protocol.Wants{V: protocol.Version, Client: e.opts.Client, Items: []protocol.WantItem{}}
	var published string
	var gen uint64
	if err := e.db.View(func(tx *state.Tx) error {
		bs, err := buckets(tx, bucketWants, bucketMeta)
		if err != nil {
			return err
		}
		published = string(bs[1].Get([]byte("wantsum")))
		gen = getU64(bs[1], "wantgen")
		return bs[0].ForEach(nil, func(k, v []byte) error {
			var it wantItem
			if err := json.Unmarshal(v, &it); err != nil {
				return err
			}
			w.Items = append(w.Items, protocol.WantItem{Path: string(k), Hash: it.Hash, Holder: it.Holder})
			return nil
		})
	}); err != nil {
		return err
	}
	sum, _ := json.Marshal(w.Items)
	if string(sum) == published || (published == "" && len(w.Items) == 0) {
		return nil
	}
	// Spent before the writes, as for the acks (writeAcks): a holder that
	// read a request whose write seemed to fail here reads it again only
	// under a newer generation.
	gen++
	if err := e.spendGen("wantgen", gen); err != nil {
		return err
	}
	if _, err := e.repo.PutJSON(ctx, envelope.KindAcks, protocol.WantsName(e.cid), &w); err != nil {
		return fmt.Errorf("write republish request: %w", err)
	}
	if err := e.repo.PutHead(ctx, protocol.Head{CID: e.cid, Seq: gen, Want: true}); err != nil {
		return err
	}
	if gen > 1 {
		_ = e.relay.Delete(ctx, protocol.Head{CID: e.cid, Seq: gen - 1, Want: true}.Name())
	}
	return e.db.Update(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put([]byte("wantsum"), sum)
	})
}

// serveWants republishes what other clients asked this client for: the
// same versions, with the asker as the only expected puller. An item this
// client cannot serve yet because it waits for that very content itself
// (its own state is have-pending, or the file is being written) is kept
// as pending and tried again every round without reading the request
// again, so a chain of clients catching up from each other's indexes
// drains as soon as one of them gets the content (PROTOCOL.md §9).
func (e *Engine) serveWants(ctx context.Context, heads []protocol.Head, lv *localView, res *Result) error {
	for _, h := range heads {
		if !h.Want || h.CID == e.cid {
			continue
		}
		var seen uint64
		var pending []protocol.WantItem
		if err := e.db.View(func(tx *state.Tx) error {
			b, err := tx.Bucket(bucketSeenW)
			if err != nil {
				return err
			}
			seen = getU64(b, h.CID)
			_, err = getJSON(b, []byte(pendingKey(h.CID)), &pending)
			return err
		}); err != nil {
			return err
		}
		var items []protocol.WantItem
		switch {
		case h.Seq > seen:
			var w protocol.Wants
			err := e.repo.GetJSON(ctx, envelope.KindAcks, protocol.WantsName(h.CID), protocol.MaxManifest, &w)
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err == nil {
				err = w.Validate(e.opts.GOOS)
			}
			if err != nil {
				return fmt.Errorf("republish request of client %s: %w", h.CID, err)
			}
			items = w.Items
		case len(pending) > 0:
			items = pending
		default:
			continue
		}
		left, err := e.republish(ctx, h.CID, items, lv, res)
		if err != nil {
			return err
		}
		if err := e.db.Update(func(tx *state.Tx) error {
			b, err := tx.Bucket(bucketSeenW)
			if err != nil {
				return err
			}
			if len(left) == 0 {
				if err := b.Delete([]byte(pendingKey(h.CID))); err != nil {
					return err
				}
			} else if err := putJSON(b, []byte(pendingKey(h.CID)), left); err != nil {
				return err
			}
			return putU64(b, h.CID, max(h.Seq, seen))
		}); err != nil {
			return err
		}
	}
	return nil
}

// pendingKey names, in the wantseen bucket, the items of a client's request
// this client could not serve yet.
func pendingKey(cid string) string { return "pending/" + cid }

// republish sends again the items addressed to this client, and returns
// those it cannot send yet but will be able to: content it waits for
// itself, a file changing while read, or content the relay has no room for.
func (e *Engine) republish(ctx context.Context, asker string, items []protocol.WantItem, lv *localView, res *Result) (left []protocol.WantItem, err error) {
	p := &pusher{e: e, res: res, states: map[string]*fileState{}, pack: newPackBuilder(e.packSize()), republishing: true}
	if e.opts.Quota > 0 {
		u, err := e.relayUsage(ctx)
		if err != nil {
			return nil, err
		}
		p.usage = u
	}
	var added []protocol.WantItem // handed to p, sent only if it fits
	for _, it := range items {
		if it.Holder != e.cid {
			continue
		}
		if p.full {
			left = append(left, it) // the relay is full: next round
			continue
		}
		st, err := e.loadState(it.Path)
		if err != nil {
			return nil, err
		}
		if st == nil || st.Kind != protocol.KindFile || st.Hash != it.Hash {
			// This client moved on to another version, which reaches the
			// asker the usual way and supersedes its request.
			continue
		}
		if st.Have != nil {
			left = append(left, it) // waiting for this content too
			continue
		}
		if _, modified := lv.modified(it.Path, st); modified {
			continue // a local edit: its new version supersedes the request
		}
		c := st.change(it.Path)
		c.Rivals = nil
		if c.Size <= SmallFile {
			err = p.addSmall(ctx, &c)
		} else {
			err = p.addBig(ctx, &c, nil)
		}
		if errors.Is(err, errUnstable) {
			left = append(left, it)
			continue
		}
		if err != nil {
			return nil, err
		}
		added = append(added, it)
	}
	if err := p.flushPack(ctx); err != nil {
		return nil, err
	}
	// Not all that was added is sent: a pack or chunk pack over the quota
	// is dropped without an error (flushPack, addBig; p.full says so). A
	// push finds such files again among its local changes, but a request
	// is read once and marked seen: what the manifest does not carry stays
	// pending for a round with room, or the asker waits for ever.
	sent := make(map[string]bool, len(p.changes))
	for _, c := range p.changes {
		sent[c.Path] = true
	}
	for _, it := range added {
		if !sent[it.Path] {
			left = append(left, it)
		}
	}
	if len(p.changes) == 0 {
		return left, nil
	}
	e.log.Info("republishing content another client lacks", "client", asker, "files", len(p.changes))
	return left, e.publish(ctx, p, []string{asker}, 1, false)
}

// wantCount is how many paths wait to be republished.
func (e *Engine) wantCount() (int, error) {
	n := 0
	err := e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketWants)
		if err != nil {
			return err
		}
		return b.ForEach(nil, func(_, _ []byte) error { n++; return nil })
	})
	return n, err
}
