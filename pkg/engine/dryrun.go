package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/state"
	"github.com/escale-sync/escale/pkg/storage"
)

// dryRound says what a round would do and changes nothing: no relay write,
// no local write, no state change (but the scan's hash cache).
func (e *Engine) dryRound(ctx context.Context) (*Result, error) {
	res := &Result{}
	heads, err := e.repo.ListHeads(ctx)
	if err != nil {
		return res, fmt.Errorf("list heads: %w", err)
	}
	local, err := e.scanLocal(ctx)
	if err != nil {
		return res, err
	}
	if e.opts.Mode.pulls() {
		if err := e.planPull(ctx, heads, local, res); err != nil {
			return res, err
		}
	}
	if e.opts.Mode.pushes() {
		changes, err := e.localChanges(local)
		if err != nil {
			return res, err
		}
		changes = e.holdBackMassDelete(changes, local, res)
		renamed := renames(changes)
		for _, lc := range changes {
			if a, err := GetAccess(e.db, lc.path); err != nil {
				return res, err
			} else if !a.Read {
				continue
			}
			switch {
			case lc.le == nil:
				res.Plan = append(res.Plan, "push deletion of "+lc.path)
			case renamed[lc.path] != "":
				res.Plan = append(res.Plan, fmt.Sprintf("push rename of %s to %s", renamed[lc.path], lc.path))
			case lc.st == nil || lc.st.Kind == protocol.KindDelete:
				res.Plan = append(res.Plan, fmt.Sprintf("push new %s (%d bytes)", lc.path, lc.le.Size))
			default:
				res.Plan = append(res.Plan, fmt.Sprintf("push change of %s (%d bytes)", lc.path, lc.le.Size))
			}
			res.Pushed++
		}
	}
	return res, nil
}

// planPull lists what the pull would apply, from the manifests on the relay.
func (e *Engine) planPull(ctx context.Context, heads []protocol.Head, lv *localView, res *Result) error {
	latest := map[string]uint64{}
	for _, h := range heads {
		if h.Manifest() && h.CID != e.cid && h.Seq > latest[h.CID] {
			latest[h.CID] = h.Seq
		}
	}
	cids := make([]string, 0, len(latest))
	for cid := range latest {
		cids = append(cids, cid)
	}
	sort.Strings(cids)
	for _, cid := range cids {
		var applied uint64
		if err := e.db.View(func(tx *state.Tx) error {
			b, err := tx.Bucket(bucketPeers)
			if err != nil {
				return err
			}
			applied = getU64(b, cid)
			return nil
		}); err != nil {
			return err
		}
		for seq := applied + 1; seq <= latest[cid]; seq++ {
			m, err := e.readManifest(ctx, cid, seq)
			if errors.Is(err, storage.ErrNotFound) {
				res.Plan = append(res.Plan, fmt.Sprintf("catch up from the index of client %s (update %d is no longer on the relay)", cid, seq))
				break
			}
			if err != nil {
				return err
			}
			for _, c := range m.Changes {
				st, err := e.loadState(c.Path)
				if err != nil {
					return err
				}
				if st != nil {
					if o := protocol.Compare(c.Version, st.Version); o == protocol.Equal || o == protocol.Lesser {
						continue
					}
				}
				_, modified := lv.modified(c.Path, st)
				verb := "pull"
				switch {
				case c.Kind == protocol.KindDelete:
					verb = "delete (to the trash)"
				case modified:
					verb = "pull, conflicting with a change here:"
				}
				res.Plan = append(res.Plan, fmt.Sprintf("%s %s from %s", verb, c.Path, m.Client))
				res.Pulled++
			}
		}
	}
	return nil
}
