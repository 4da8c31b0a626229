package engine

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/state"
	"github.com/escale-sync/escale/pkg/storage"
)

// Repair rebuilds a relay that lost its repository, from the clients'
// state (PROTOCOL.md §14). Every client keeps its folder and its synced
// state; what the relay lost, each client publishes again.
type Repair struct {
	// Keyrings of an `escale key export`: the relay gets the same
	// repository back (id and keys), and the other clients carry on.
	Keyrings []*envelope.Keyring
	// New starts a new repository (new id and keys) on an empty relay, or
	// joins the one another client started that way.
	New bool
}

// repairOpen opens the relay for a repair; reset says the client's relay
// bookkeeping must start over.
func (e *Engine) repairOpen(ctx context.Context, repo *protocol.Repo, openErr error, known string, creds protocol.Credentials) (*protocol.Repo, bool, error) {
	rp := e.opts.Repair
	switch {
	case errors.Is(openErr, protocol.ErrNoRepository) && len(rp.Keyrings) > 0:
		if id := hex.EncodeToString(rp.Keyrings[0].RepoID[:]); id != known {
			return nil, false, fmt.Errorf("the key export is of repository %s, but this client synced repository %s", id, known)
		}
		e.log.Warn("rebuilding the relay's repository from a key export", "relay", e.relay.String(), "repository", known)
		r, err := protocol.Recreate(ctx, e.relay, creds, rp.Keyrings, e.opts.KeyOptions...)
		return r, true, err
	case errors.Is(openErr, protocol.ErrNoRepository) && rp.New:
		e.log.Warn("starting a new repository on the empty relay; run `escale repair --new` on every other client", "relay", e.relay.String())
		r, err := protocol.Create(ctx, e.relay, e.opts.Encrypted, creds, e.opts.KeyOptions...)
		if errors.Is(err, protocol.ErrCreateRaced) {
			r, err = protocol.Open(ctx, e.relay, e.opts.Encrypted, creds)
		}
		return r, true, err
	case errors.Is(openErr, protocol.ErrNoRepository):
		return nil, false, fmt.Errorf("the relay %s is empty: rebuild it with the repository's key (`escale repair --keys EXPORT`, from `escale key export`), or start a new repository (`escale repair --new` here, then on every other client)", e.relay)
	case openErr != nil:
		return nil, false, openErr
	case repo.ID() != known && !rp.New:
		return nil, false, fmt.Errorf("the relay %s holds repository %s, not %s, which this client synced: if another client started it with `escale repair --new`, join it with `escale repair --new`", e.relay, repo.ID(), known)
	}
	return repo, true, nil
}

// resetRelayState forgets what this client knew of the relay, keeping the
// folder's synced state. A new repository starts its numbering again; the
// client then announces update 1, with no manifest, so the others catch
// up from its index.
func (e *Engine) resetRelayState(newRepo bool) error {
	return e.db.Update(func(tx *state.Tx) error {
		names := []string{bucketOut, bucketChunk, bucketParts, bucketSeenW, bucketAcks}
		if newRepo {
			names = append(names, bucketPeers, bucketWants)
		}
		for _, n := range names {
			if err := tx.DeleteBucket(n); err != nil {
				return err
			}
		}
		b, err := tx.Bucket(bucketMeta)
		if err != nil {
			return err
		}
		for _, k := range []string{"index", "publishing"} {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		if err := putU64(b, "ackdirty", 1); err != nil {
			return err
		}
		if newRepo {
			return putU64(b, "seq", 1)
		}
		return nil
	})
}

// healOwnRecords publishes again what the relay lost of this client: its
// head (so others see it and, if they miss its updates, catch up from its
// index) and its whole index.
func (e *Engine) healOwnRecords(ctx context.Context, seq uint64) error {
	e.log.Warn("this client's records are missing on the relay; publishing them again", "update", seq)
	if err := e.repo.PutHead(ctx, protocol.Head{CID: e.cid, Seq: seq}); err != nil {
		return fmt.Errorf("publish this client's head again: %w", err)
	}
	return e.db.Update(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketMeta)
		if err != nil {
			return err
		}
		// The next publish rebuilds the index whole (N 0 forces it) under
		// a generation above the one the relay may still hold, and deletes
		// that one: a reader takes the highest root, so restarting at 1
		// would leave it reading the stale index.
		var meta indexMeta
		if _, err := getJSON(b, []byte("index"), &meta); err != nil {
			return err
		}
		meta.N = 0
		return putJSON(b, []byte("index"), &meta)
	})
}

// recoverLostState rebuilds the local state of a client that published
// before but has no record of it (its state folder was lost or deleted):
// from its own index and manifests on the relay, and a scan. A file the
// folder no longer has is not recorded, so it comes back from the others
// instead of being pushed as a deletion; nothing local is deleted.
func (e *Engine) recoverLostState(ctx context.Context, heads []protocol.Head) error {
	var seq, publishing uint64
	if err := e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketMeta)
		if err != nil {
			return err
		}
		seq, publishing = getU64(b, "seq"), getU64(b, "publishing")
		return nil
	}); err != nil || !e.fresh || seq != 0 || publishing != 0 {
		return err
	}
	var last uint64
	for _, h := range heads {
		if h.CID == e.cid && h.Manifest() {
			last = max(last, h.Seq)
		}
	}
	if last == 0 {
		return nil
	}
	e.log.Warn("this client published before but its local state is gone: rebuilding it from its index on the relay and a scan; no file is deleted", "update", last)
	root, entries, err := e.readIndex(ctx, e.cid)
	if err != nil {
		return err
	}
	var clock, from uint64
	if root != nil {
		clock, from = root.Clock, root.Seq
	}
	// Updates after the index: their changes are newer, and their data may
	// still wait for pullers.
	var outs []outstanding
	logEntries, err := e.relay.List(ctx, protocol.LogDir(e.cid))
	if err != nil {
		return fmt.Errorf("list own updates: %w", err)
	}
	var seqs []uint64
	for _, en := range logEntries {
		if n, ok := protocol.ParseSeqName(path.Base(en.Name)); ok && n <= last {
			seqs = append(seqs, n)
		}
	}
	slices.Sort(seqs)
	for _, n := range seqs {
		m, err := e.readManifest(ctx, e.cid, n)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		outs = append(outs, outstanding{Seq: n, Pullers: m.Pullers, Need: m.Need, Objects: m.Objects, Time: m.Time.UnixNano()})
		if n > from {
			entries = append(entries, m.Changes...)
		}
		clock = max(clock, m.Clock)
	}
	lv, err := e.scanLocal(ctx)
	if err != nil {
		return err
	}
	// A file the folder lost too is asked from a client that pulls (it
	// holds what this client published), not recorded as deleted.
	pullers, _, err := e.expectedPullers(ctx)
	if err != nil {
		return err
	}
	slices.Sort(pullers)
	return e.db.Update(func(tx *state.Tx) error {
		bs, err := buckets(tx, bucketMeta, bucketFiles, bucketOut, bucketWants)
		if err != nil {
			return err
		}
		states := map[string]*fileState{}
		for i := range entries {
			c := &entries[i]
			clock = max(clock, c.Version.Max())
			if c.Kind == protocol.KindPart || (c.Kind == protocol.KindSymlink && lv.entries[c.Path] == nil) {
				delete(states, c.Path)
				continue
			}
			st := stateOf(c)
			st.Rivals = c.Rivals
			st.Chunks = chunkRefs(c)
			if c.Kind == protocol.KindFile && lv.entries[c.Path] == nil {
				if len(pullers) == 0 {
					delete(states, c.Path)
					continue
				}
				st.Have = &haveState{Kind: protocol.KindDelete}
				if err := putJSON(bs[3], []byte(c.Path), &wantItem{Hash: c.Hash, Holder: pullers[0]}); err != nil {
					return err
				}
			}
			states[c.Path] = st // later updates overwrite the index's entry
		}
		for _, p := range sortedKeys(states) {
			if err := putJSON(bs[1], []byte(p), states[p]); err != nil {
				return err
			}
		}
		for _, o := range outs {
			if err := putJSON(bs[2], u64key(o.Seq), &o); err != nil {
				return err
			}
		}
		if err := putU64(bs[0], "clock", max(clock, getU64(bs[0], "clock"))); err != nil {
			return err
		}
		return putU64(bs[0], "seq", last)
	})
}
