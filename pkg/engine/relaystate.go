package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"sort"
	"time"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/state"
	"github.com/escale-sync/escale/pkg/storage"
)

// register writes this client's record once, so pushers count it as a puller.
func (e *Engine) register(ctx context.Context) error {
	var done bool
	if err := e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketMeta)
		if err != nil {
			return err
		}
		done = string(b.Get([]byte("registered"))) == string(e.opts.Mode)
		return nil
	}); err != nil || done {
		return err
	}
	info := protocol.ClientInfo{V: protocol.Version, Name: e.opts.Client, Mode: string(e.opts.Mode), Pulls: e.opts.Mode.pulls(), Created: e.opts.Now().UTC()}
	if _, err := e.repo.PutJSON(ctx, envelope.KindAcks, protocol.InfoName(e.cid), &info); err != nil {
		return fmt.Errorf("register client: %w", err)
	}
	return e.db.Update(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put([]byte("registered"), []byte(e.opts.Mode))
	})
}

// checkOwnHeads catches a second process (or machine) running under this
// client's name: a head of ours that we did not write. A head of the
// manifest this client was publishing when it stopped is its own: the
// local state is completed from the manifest.
func (e *Engine) checkOwnHeads(ctx context.Context, heads []protocol.Head) error {
	var seq, publishing, ackGen, wantGen uint64
	if err := e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketMeta)
		if err != nil {
			return err
		}
		seq, publishing, ackGen = getU64(b, "seq"), getU64(b, "publishing"), getU64(b, "ackgen")
		wantGen = getU64(b, "wantgen")
		return nil
	}); err != nil {
		return err
	}
	e.dropOldHeads(ctx, heads)
	if err := e.catchUpGens(heads, ackGen, wantGen); err != nil {
		return err
	}
	own, ownAck := false, false
	var ownSeq uint64
	for _, h := range heads {
		if h.CID == e.cid && h.Manifest() {
			own = true
			ownSeq = max(ownSeq, h.Seq)
		}
		if h.CID == e.cid && h.Ack {
			ownAck = true
		}
	}
	if seq == 0 && ackGen > 0 && !ownAck {
		// A client that only pulls has an acknowledgement head instead.
		if err := e.checkMarker(ctx); err != nil {
			return err
		}
	}
	if seq > 0 && own && ownSeq < seq && publishing != seq {
		// This client's newest head is missing while older ones are there: a
		// relay put back from an older copy (or a listing that lags).
		if _, err := e.relay.Stat(ctx, protocol.Head{CID: e.cid, Seq: seq}.Name()); errors.Is(err, storage.ErrNotFound) {
			if e.opts.Repair != nil {
				// escale repair: the relay as it is now is the one to carry on
				// with; what it lost of this client is published again.
				return e.healOwnRecords(ctx, seq)
			}
			return fmt.Errorf("the relay was rolled back: it shows this client's update %d but not %d, which this client published; nothing was changed locally (put back a newer copy of the relay, or run `escale repair --new` on each client to carry on with this one)", ownSeq, seq)
		} else if err != nil {
			return err
		}
	}
	if seq > 0 && !own {
		// This client published, yet its head is not listed: a wiped or
		// replaced relay, or a listing that lags. Read by name, a lagging
		// head is there, and nothing needs healing.
		_, err := e.relay.Stat(ctx, protocol.Head{CID: e.cid, Seq: seq}.Name())
		switch {
		case err == nil: // only listed late
		case !errors.Is(err, storage.ErrNotFound):
			return err
		default:
			// Pushing on would fill a folder that is no repository any more.
			if err := e.checkMarker(ctx); err != nil {
				return err
			}
			// The repository is there but not this client's head: the relay
			// was rebuilt (`escale repair`), or lost objects.
			if err := e.healOwnRecords(ctx, seq); err != nil {
				return err
			}
		}
	}
	for _, h := range heads {
		if h.CID != e.cid || !h.Manifest() || h.Seq <= seq {
			continue
		}
		if h.Seq == publishing && h.Seq == seq+1 {
			return e.recoverPublish(ctx, h.Seq)
		}
		return fmt.Errorf("the relay has update %d from client %q, but this client only wrote up to %d: another escale uses the same client name on this repository; give each machine its own `client` name", h.Seq, e.opts.Client, seq)
	}
	return nil
}

// checkMarker verifies that the relay still holds this repository.
func (e *Engine) checkMarker(ctx context.Context) error {
	m, err := protocol.ReadMarker(ctx, e.relay)
	switch {
	case errors.Is(err, protocol.ErrNoRepository), errors.Is(err, protocol.ErrNotRepository):
		return fmt.Errorf("the relay %s no longer holds repository %s (its escale.json is gone): it was wiped or replaced; nothing was changed locally (restore it with `escale restore`, or run `escale repair` to rebuild it from this client)", e.relay, e.repo.ID())
	case err != nil:
		return err
	case m.Repository != e.repo.ID():
		return fmt.Errorf("the relay %s now holds repository %s, not %s: it was replaced; nothing was changed locally (if another client started a new repository there with `escale repair --new`, join it with `escale repair --new`)", e.relay, m.Repository, e.repo.ID())
	}
	return nil
}

// recoverPublish completes the local record of a manifest whose head was
// written just before this client stopped.
func (e *Engine) recoverPublish(ctx context.Context, seq uint64) error {
	m, err := e.readManifest(ctx, e.cid, seq)
	if err != nil {
		return fmt.Errorf("recover update %d after an interruption: %w", seq, err)
	}
	e.log.Info("completing the record of an update published just before an interruption", "update", seq)
	out := outstanding{Seq: seq, Pullers: m.Pullers, Need: m.Need, Objects: m.Objects, Time: m.Time.UnixNano()}
	return e.db.Update(func(tx *state.Tx) error {
		bs, err := buckets(tx, bucketMeta, bucketFiles, bucketOut, bucketDirty)
		if err != nil {
			return err
		}
		for i := range m.Changes {
			c := &m.Changes[i]
			if c.Version[e.cid] != m.Clock && c.Version[e.cid] == 0 {
				continue // a republished version, not ours
			}
			st := stateOf(c)
			st.Chunks = chunkRefs(c)
			if err := putJSON(bs[1], []byte(c.Path), st); err != nil {
				return err
			}
			if err := bs[3].Put([]byte(c.Path), nil); err != nil {
				return err
			}
		}
		if err := putU64(bs[0], "seq", seq); err != nil {
			return err
		}
		if getU64(bs[0], "clock") < m.Clock {
			if err := putU64(bs[0], "clock", m.Clock); err != nil {
				return err
			}
		}
		if err := bs[0].Delete([]byte("publishing")); err != nil {
			return err
		}
		return putJSON(bs[2], u64key(seq), &out)
	})
}

// writeAcksIfDue publishes the acknowledgements when they changed (or a
// previous write failed), and at least every puller_timeout/30 as a
// heartbeat, so pushers know this puller is alive (PROTOCOL.md §8).
func (e *Engine) writeAcksIfDue(ctx context.Context) error {
	var dirty, last uint64
	if err := e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketMeta)
		if err != nil {
			return err
		}
		dirty, last = getU64(b, "ackdirty"), getU64(b, "acktime")
		return nil
	}); err != nil {
		return err
	}
	heartbeat := e.opts.PullerTimeout / 30
	if dirty == 0 && (last == 0 || e.opts.Now().Sub(time.Unix(0, int64(last))) < heartbeat) {
		return nil
	}
	return e.writeAcks(ctx)
}

// writeAcks publishes what this client has applied, then bumps its ack head
// so pushers know to look; only then is the new generation recorded, so a
// failed write is simply done again.
func (e *Engine) writeAcks(ctx context.Context) error {
	acks := protocol.Acks{V: protocol.Version, Client: e.opts.Client, Time: e.opts.Now().UTC(), Applied: map[string]uint64{}}
	var gen uint64
	if err := e.db.View(func(tx *state.Tx) error {
		bs, err := buckets(tx, bucketPeers, bucketMeta)
		if err != nil {
			return err
		}
		gen = getU64(bs[1], "ackgen") + 1
		return bs[0].ForEach(nil, func(k, v []byte) error {
			acks.Applied[string(k)] = getU64(bs[0], string(k))
			return nil
		})
	}); err != nil {
		return err
	}
	acks.Gen = gen
	// The generation is spent before the writes: an attempt that fails
	// here may still have reached the relay (a reply cut after the server
	// stored the head), and a pusher that read it records its generation
	// and reads that client's acks again only for a newer one. The next
	// attempt must carry a newer generation, or those acks stay stale for
	// that pusher and its data stays on the relay.
	if err := e.spendGen("ackgen", gen); err != nil {
		return err
	}
	if _, err := e.repo.PutJSON(ctx, envelope.KindAcks, protocol.AcksName(e.cid), &acks); err != nil {
		return fmt.Errorf("write acknowledgements: %w", err)
	}
	if err := e.repo.PutHead(ctx, protocol.Head{CID: e.cid, Seq: gen, Ack: true}); err != nil {
		return fmt.Errorf("write ack head: %w", err)
	}
	if gen > 1 {
		// Heads of attempts that failed after all are left to dropOldHeads.
		_ = e.relay.Delete(ctx, protocol.Head{CID: e.cid, Seq: gen - 1, Ack: true}.Name())
	}
	return e.db.Update(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := putU64(b, "acktime", uint64(acks.Time.UnixNano())); err != nil {
			return err
		}
		return putU64(b, "ackdirty", 0)
	})
}

// catchUpGens (ackGen, wantGen: the local ones) makes this client's next
// ack and request generations newer than any of its markers on the relay:
// after a lost local state they would start again from 1, under the
// generations readers already recorded, and
// be ignored (§8).
func (e *Engine) catchUpGens(heads []protocol.Head, ackGen, wantGen uint64) error {
	var ack, want uint64
	for _, h := range heads {
		switch {
		case h.CID != e.cid:
		case h.Ack:
			ack = max(ack, h.Seq)
		case h.Want:
			want = max(want, h.Seq)
		}
	}
	if ack <= ackGen && want <= wantGen {
		return nil // the usual case: no write, every round
	}
	return e.db.Update(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketMeta)
		if err != nil {
			return err
		}
		if ack > getU64(b, "ackgen") {
			if err := putU64(b, "ackgen", ack); err != nil {
				return err
			}
		}
		if want > getU64(b, "wantgen") {
			return putU64(b, "wantgen", want)
		}
		return nil
	})
}

// spendGen records gen as the last generation used for key (ackgen,
// wantgen) before anything is written under it, so no generation is ever
// written twice with different content.
func (e *Engine) spendGen(key string, gen uint64) error {
	return e.db.Update(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketMeta)
		if err != nil {
			return err
		}
		return putU64(b, key, gen)
	})
}

// clients lists the registered clients, reading records not seen before.
func (e *Engine) clients(ctx context.Context) (map[string]*protocol.ClientInfo, error) {
	entries, err := e.relay.List(ctx, protocol.ClientsDir)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	out := map[string]*protocol.ClientInfo{}
	for _, en := range entries {
		cid := path.Base(en.Name)
		if !en.IsDir || !protocol.ValidCID(cid) {
			continue
		}
		info, ok := e.peers[cid]
		if !ok {
			var ci protocol.ClientInfo
			err := e.repo.GetJSON(ctx, envelope.KindAcks, protocol.InfoName(cid), protocol.MaxSmallObj, &ci)
			if errors.Is(err, storage.ErrNotFound) {
				continue // registering right now
			}
			// An unreadable record stops the push: without it the expected
			// pullers would be wrong and data could leave too early.
			if err != nil {
				return nil, fmt.Errorf("client record %s: %w", protocol.InfoName(cid), err)
			}
			if e.repo.CID(ci.Name) != cid {
				return nil, fmt.Errorf("client record %s: %w: names client %q of another id", protocol.InfoName(cid), protocol.ErrInvalid, ci.Name)
			}
			info = &ci
			e.peers[cid] = info
		}
		out[cid] = info
	}
	return out, nil
}

// expectedPullers fixes who must acknowledge a new manifest (PROTOCOL.md §8).
func (e *Engine) expectedPullers(ctx context.Context) ([]string, int, error) {
	if e.opts.Pullers > 0 {
		return nil, e.opts.Pullers, nil
	}
	cl, err := e.clients(ctx)
	if err != nil {
		return nil, 0, err
	}
	var ids []string
	for cid, info := range cl {
		if cid != e.cid && info.Pulls {
			ids = append(ids, cid)
		}
	}
	sort.Strings(ids)
	// Nobody else registered yet: keep the data for the first client that
	// joins instead of deleting it at once.
	return ids, max(1, len(ids)), nil
}

// relayUsage sums the sizes of every client's objects.
func (e *Engine) relayUsage(ctx context.Context) (int64, error) {
	var total int64
	err := e.relay.Walk(ctx, protocol.ClientsDir, func(en storage.Entry) error {
		if en.Size > 0 {
			total += en.Size
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure relay usage: %w", err)
	}
	return total, nil
}

// collect deletes the data and manifests of ours that every expected puller
// has acknowledged (PROTOCOL.md §8).
func (e *Engine) collect(ctx context.Context, heads []protocol.Head, res *Result) error {
	var outs []outstanding
	if err := eachJSON(e.db, bucketOut, func(_ string, o *outstanding) error {
		outs = append(outs, *o)
		return nil
	}); err != nil || len(outs) == 0 {
		return err
	}
	acks, err := e.readAcks(ctx, heads)
	if err != nil {
		return err
	}
	now := e.opts.Now()
	var done []outstanding
	for _, o := range outs {
		if e.acknowledged(o, acks, now) {
			done = append(done, o)
		}
	}
	if len(done) == 0 {
		return nil
	}
	if len(done) == len(outs) {
		// Everything of ours is collected: the next round checks data/ for
		// leftovers again (one listing), in case a lagging listing hid some
		// when this process started.
		e.cleaned = false
	}
	// Objects still referenced by a pending manifest stay (a chunk can be
	// reused by a later version).
	pending := map[string]bool{}
	doneSet := map[uint64]bool{}
	for _, o := range done {
		doneSet[o.Seq] = true
	}
	for _, o := range outs {
		if !doneSet[o.Seq] {
			for _, id := range o.Objects {
				pending[id] = true
			}
		}
	}
	// A delete reported as not found counts as done (a crash may have cut
	// an earlier collect short), but a storage can also briefly fail to
	// show an object it holds: the next round's cleanOrphans then looks for
	// what is left, by listing, as the record of it is gone.
	remove := func(name string) error {
		err := e.relay.Delete(ctx, name)
		if errors.Is(err, storage.ErrNotFound) {
			e.cleaned = false
			return nil
		}
		if err != nil {
			return fmt.Errorf("collect: %w", err)
		}
		return nil
	}
	var gone []string
	for _, o := range done {
		for _, id := range o.Objects {
			if pending[id] {
				continue
			}
			if err := remove(protocol.DataName(e.cid, id)); err != nil {
				return err
			}
			gone = append(gone, id)
			res.Collected++
		}
		if err := remove(protocol.ManifestName(e.cid, o.Seq)); err != nil {
			return err
		}
		res.Collected++
	}
	if err := e.forgetChunks(gone); err != nil {
		return err
	}
	return e.db.Update(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketOut)
		if err != nil {
			return err
		}
		for _, o := range done {
			if err := b.Delete(u64key(o.Seq)); err != nil {
				return err
			}
		}
		return nil
	})
}

// ackRecord is another client's acknowledgements as last read.
type ackRecord struct {
	Gen     uint64            `json:"gen"`
	Time    time.Time         `json:"time"`
	Applied map[string]uint64 `json:"applied"`
}

// readAcks returns every client's acknowledgements, re-reading only those
// whose ack head moved since the last read.
func (e *Engine) readAcks(ctx context.Context, heads []protocol.Head) (map[string]*ackRecord, error) {
	out := map[string]*ackRecord{}
	if err := eachJSON(e.db, bucketAcks, func(cid string, r *ackRecord) error {
		out[cid] = r
		return nil
	}); err != nil {
		return nil, err
	}
	changed := map[string]*ackRecord{}
	for _, h := range heads {
		if !h.Ack || h.CID == e.cid {
			continue
		}
		if r := out[h.CID]; r != nil && r.Gen >= h.Seq {
			continue
		}
		var a protocol.Acks
		err := e.repo.GetJSON(ctx, envelope.KindAcks, protocol.AcksName(h.CID), protocol.MaxSmallObj, &a)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if notThereYet(err) {
			// Overwritten in place: a cut upload or a damaged copy. Data
			// simply stays until a good copy arrives (PROTOCOL.md §5.1).
			e.problem(fmt.Sprintf("%v; treated as not there yet", err))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("acknowledgements of client %s: %w", h.CID, err)
		}
		if e.repo.CID(a.Client) != h.CID {
			return nil, fmt.Errorf("acknowledgements of client %s: %w: written for client %q", h.CID, protocol.ErrInvalid, a.Client)
		}
		if a.Gen < h.Seq {
			// An older copy (storage lag, or put back): not there yet.
			continue
		}
		r := &ackRecord{Gen: h.Seq, Time: a.Time, Applied: a.Applied}
		out[h.CID], changed[h.CID] = r, r
	}
	if len(changed) == 0 {
		return out, nil
	}
	return out, e.db.Update(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketAcks)
		if err != nil {
			return err
		}
		for cid, r := range changed {
			if err := putJSON(b, []byte(cid), r); err != nil {
				return err
			}
		}
		return nil
	})
}

// acknowledged reports whether o's data may leave the relay. A listed puller
// unseen for puller_timeout no longer pins it.
func (e *Engine) acknowledged(o outstanding, acks map[string]*ackRecord, now time.Time) bool {
	age := now.Sub(time.Unix(0, o.Time))
	if len(o.Pullers) > 0 {
		for _, cid := range o.Pullers {
			r := acks[cid]
			if r != nil && r.Applied[e.cid] >= o.Seq {
				continue
			}
			if age > e.opts.PullerTimeout && (r == nil || now.Sub(r.Time) > e.opts.PullerTimeout) {
				e.log.Warn("a puller has not been seen for longer than puller_timeout; it no longer pins relay data and must resync when it returns", "client", cid, "update", o.Seq)
				continue
			}
			return false
		}
		return true
	}
	n := 0
	for cid, r := range acks {
		if cid != e.cid && r.Applied[e.cid] >= o.Seq {
			n++
		}
	}
	return n >= o.Need || (age > e.opts.PullerTimeout && n > 0)
}

// cleanOrphans deletes data objects of ours that no pending manifest refers
// to: uploads cut short by a crash before their manifest was written. Only
// this client writes under its prefix, so nothing else can be in flight.
// Then collected manifests a delete missed (cleanOwnLog).
func (e *Engine) cleanOrphans(ctx context.Context) (int, error) {
	// A crash mid-upload also leaves, on S3, a multipart upload nobody
	// completes or aborts: its parts stay stored (and billed). None of ours
	// is in flight now (the push is over), so any age goes. A server that
	// cannot list them must not stop the sync: the next sweep tries again.
	if err := e.relay.AbortIncompleteUploads(ctx, protocol.DataDir(e.cid), 0); err != nil {
		e.log.Warn("could not abort the unfinished uploads an interrupted push left on the relay", "err", err)
	}
	keep := map[string]bool{}
	if err := eachJSON(e.db, bucketOut, func(_ string, o *outstanding) error {
		for _, id := range o.Objects {
			keep[id] = true
		}
		return nil
	}); err != nil {
		return 0, err
	}
	entries, err := e.relay.List(ctx, protocol.DataDir(e.cid))
	if err != nil {
		return 0, fmt.Errorf("list own data: %w", err)
	}
	// Uploads noted locally are found by name: a listing may lag behind.
	listed := map[string]bool{}
	for _, en := range entries {
		listed[en.Name] = true
	}
	if err := e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketChunk)
		if err != nil {
			return err
		}
		return b.ForEach(nil, func(k, _ []byte) error {
			if name := protocol.DataName(e.cid, string(k)); !listed[name] {
				entries = append(entries, storage.Entry{Name: name})
			}
			return nil
		})
	}); err != nil {
		return 0, err
	}
	n := 0
	var gone []string
	for _, en := range entries {
		if en.IsDir || keep[path.Base(en.Name)] {
			continue
		}
		err := e.relay.Delete(ctx, en.Name)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return n, fmt.Errorf("delete orphan %s: %w", en.Name, err)
		}
		gone = append(gone, path.Base(en.Name))
		if err == nil {
			n++
		}
	}
	if err := e.forgetChunks(gone); err != nil {
		return n, err
	}
	m, err := e.cleanOwnLog(ctx)
	return n + m, err
}

// cleanOwnLog deletes manifests of ours that no outstanding record names:
// collected ones whose delete was reported as not found while the storage
// still held them. Only manifests the published index covers go, so a
// client that never read one catches up from the index (PROTOCOL.md §8).
func (e *Engine) cleanOwnLog(ctx context.Context) (int, error) {
	var seq uint64
	var idx indexMeta
	keep := map[uint64]bool{}
	if err := e.db.View(func(tx *state.Tx) error {
		bs, err := buckets(tx, bucketMeta, bucketOut)
		if err != nil {
			return err
		}
		if _, err := getJSON(bs[0], []byte("index"), &idx); err != nil {
			return err
		}
		seq = min(getU64(bs[0], "seq"), idx.Seq)
		return bs[1].ForEach(nil, func(k, _ []byte) error {
			keep[binary.BigEndian.Uint64(k)] = true
			return nil
		})
	}); err != nil || seq == 0 {
		return 0, err
	}
	entries, err := e.relay.List(ctx, protocol.LogDir(e.cid))
	if err != nil {
		return 0, fmt.Errorf("list own updates: %w", err)
	}
	n := 0
	for _, en := range entries {
		s, ok := protocol.ParseSeqName(path.Base(en.Name))
		if en.IsDir || !ok || s > seq || keep[s] {
			continue
		}
		err := e.relay.Delete(ctx, en.Name)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return n, fmt.Errorf("delete collected update %s: %w", en.Name, err)
		}
		if err == nil {
			n++
		}
	}
	return n, nil
}

// notThereYet reports a small object, overwritten in place (acks, client
// records, republish requests), that fails verification: a cut upload or a
// damaged copy, to be treated as absent rather than stop the round.
func notThereYet(err error) bool {
	var ve *envelope.VerifyError
	return errors.As(err, &ve) || errors.Is(err, protocol.ErrInvalid)
}

// problem reports something wrong on the relay that does not stop the round
// (Result.Problems, and the log).
func (e *Engine) problem(msg string) {
	e.log.Warn(msg)
	if e.res != nil {
		e.res.Problems = append(e.res.Problems, msg)
	}
}

// dropOldHeads deletes this client's superseded markers that an earlier
// delete left behind (a failed call is only retried here, next round).
func (e *Engine) dropOldHeads(ctx context.Context, heads []protocol.Head) {
	newest := map[[2]bool]uint64{}
	for _, h := range heads {
		if h.CID == e.cid {
			k := [2]bool{h.Ack, h.Want}
			newest[k] = max(newest[k], h.Seq)
		}
	}
	for _, h := range heads {
		if h.CID == e.cid && h.Seq < newest[[2]bool{h.Ack, h.Want}] {
			_ = e.relay.Delete(ctx, h.Name())
		}
	}
}
