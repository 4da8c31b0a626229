package engine

import (
	"github.com/escale-sync/escale/pkg/state"
)

// Status is what the local state says about the repository, for
// `escale status`.
type Status struct {
	Client       string            `json:"client"`
	ClientID     string            `json:"client_id"`
	Repository   string            `json:"repository"`
	Files        int               `json:"files"`         // files and symlinks found by the last scan
	Seq          uint64            `json:"published"`     // updates published by this client
	Pending      int               `json:"pending"`       // own updates whose data waits on the relay
	PendingBytes int64             `json:"pending_bytes"` // their size on the relay
	Wants        int               `json:"waiting_for_republish"`
	Applied      map[string]uint64 `json:"applied"`    // other client (name when known, else id) → last update applied
	AckedBy      map[string]uint64 `json:"acked_by"`   // other client → last of our updates it acknowledged
	Conflicts    int               `json:"conflicts"`  // conflict copies among them
	Access       int               `json:"restricted"` // files with access modifiers
}

// Status reads the local state.
func (e *Engine) Status() (*Status, error) {
	// File counts come from the last scan: walking the whole state after
	// every round would cost O(repository) in the daemon's loop.
	st := &Status{Client: e.opts.Client, ClientID: e.cid, Repository: e.repo.ID(), Applied: map[string]uint64{}, AckedBy: map[string]uint64{},
		Files: e.scanned.files, Conflicts: e.scanned.conflicts}
	name := func(cid string) string {
		if info, ok := e.peers[cid]; ok {
			return info.Name
		}
		return cid
	}
	err := e.db.View(func(tx *state.Tx) error {
		bs, err := buckets(tx, bucketMeta, bucketOut, bucketPeers, bucketAcks, bucketWants, bucketAccess)
		if err != nil {
			return err
		}
		st.Seq = getU64(bs[0], "seq")
		if err := bs[1].ForEach(nil, func(k, v []byte) error {
			var o outstanding
			if _, err := getJSON(bs[1], k, &o); err != nil {
				return err
			}
			st.Pending++
			st.PendingBytes += o.Manifest
			for _, n := range o.Sizes {
				st.PendingBytes += n
			}
			return nil
		}); err != nil {
			return err
		}
		if err := bs[2].ForEach(nil, func(k, _ []byte) error {
			st.Applied[name(string(k))] = getU64(bs[2], string(k))
			return nil
		}); err != nil {
			return err
		}
		if err := bs[3].ForEach(nil, func(k, _ []byte) error {
			var r ackRecord
			if _, err := getJSON(bs[3], k, &r); err != nil {
				return err
			}
			st.AckedBy[name(string(k))] = r.Applied[e.cid]
			return nil
		}); err != nil {
			return err
		}
		if err := bs[4].ForEach(nil, func(_, _ []byte) error { st.Wants++; return nil }); err != nil {
			return err
		}
		return bs[5].ForEach(nil, func(_, _ []byte) error { st.Access++; return nil })
	})
	return st, err
}
