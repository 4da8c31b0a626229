package engine

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/state"
)

// Buckets of the local state database.
const (
	bucketFiles = "files"    // path → fileState: what was last synced
	bucketMeta  = "meta"     // repository id, client id, clock, sequence number
	bucketPeers = "peers"    // pusher cid → last seq applied from it
	bucketOut   = "out"      // own seq → outstanding manifest (waiting for acks)
	bucketAcks  = "acked"    // pusher cid → ack generation seen (GC trigger)
	bucketDirty = "idxdirty" // paths changed since the index was last published
	bucketPage  = "bypage"   // "<page>/<path>": the paths of each index page
	bucketWants = "wants"    // path → wantItem: content this client asked to be republished
	bucketSeenW = "wantseen" // client id → want generation already served
	bucketChunk = "chunks"   // chunk id → stored size, once its upload completed
)

// fileState is what a path looked like when it was last synced, in either
// direction. The local file is "unchanged" while it still matches it.
type fileState struct {
	Kind    protocol.ChangeKind `json:"k"`
	Version protocol.Vector     `json:"v"`
	By      string              `json:"by"`
	Hash    string              `json:"h,omitempty"`
	Size    int64               `json:"s,omitempty"`
	MTime   int64               `json:"m,omitempty"`
	Mode    uint32              `json:"mo,omitempty"`
	Target  string              `json:"t,omitempty"`
	// Chunks of a big file, for delta transfers.
	Chunks []protocol.Ref `json:"c,omitempty"`
	// Pulled: the local file was last written by a pull (conservative mode).
	Pulled bool `json:"p,omitempty"`
	// Origin: the version whose content this one carries (a resolution).
	Origin protocol.Vector `json:"o,omitempty"`
	// Rivals: the other versions of the register, which lost (conflict.go).
	Rivals []protocol.Rival `json:"r,omitempty"`
	// Have, when set, is what the folder holds instead of the winner's
	// content, which could not be fetched yet (it was asked for).
	Have *haveState `json:"hv,omitempty"`
	// Retire: this client's own version lost; it republishes the winner
	// under a vector that dominates its version (PROTOCOL.md §6).
	Retire bool `json:"rt,omitempty"`
}

// haveState is the local content of a path whose winner is still missing.
type haveState struct {
	Kind   protocol.ChangeKind `json:"k"`
	Hash   string              `json:"h,omitempty"`
	MTime  int64               `json:"m,omitempty"`
	Mode   uint32              `json:"mo,omitempty"`
	Target string              `json:"t,omitempty"`
}

// change turns the state back into the manifest entry that describes it.
func (s *fileState) change(path string) protocol.Change {
	return protocol.Change{Path: path, Kind: s.Kind, Version: s.Version, By: s.By, Hash: s.Hash, Size: s.Size, MTime: s.MTime, Mode: s.Mode, Target: s.Target, Origin: s.Origin, Rivals: s.Rivals}
}

func stateOf(c *protocol.Change) *fileState {
	return &fileState{Kind: c.Kind, Version: c.Version, By: c.By, Hash: c.Hash, Size: c.Size, MTime: c.MTime, Mode: c.Mode, Target: c.Target, Origin: c.Origin}
}

// outstanding is one of our manifests whose data still waits on the relay.
type outstanding struct {
	Seq      uint64   `json:"seq"`
	Pullers  []string `json:"pullers"`
	Need     int      `json:"need"`
	Manifest int64    `json:"manifest"` // the manifest's stored size
	Objects  []string `json:"objects"`
	Sizes    []int64  `json:"sizes"`
	Time     int64    `json:"time"`
}

func u64key(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}

func getJSON(b *state.Bucket, key []byte, v any) (bool, error) {
	data := b.Get(key)
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("local state %q is damaged: %w; run `escale repair`", key, err)
	}
	return true, nil
}

func putJSON(b *state.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

func getU64(b *state.Bucket, key string) uint64 {
	v := b.Get([]byte(key))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putU64(b *state.Bucket, key string, n uint64) error {
	return b.Put([]byte(key), u64key(n))
}

// buckets opens the named buckets of tx.
func buckets(tx *state.Tx, names ...string) ([]*state.Bucket, error) {
	out := make([]*state.Bucket, len(names))
	for i, n := range names {
		b, err := tx.Bucket(n)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// eachJSON calls fn with every record of a bucket, decoded, in key order.
func eachJSON[T any](db *state.DB, bucket string, fn func(key string, v *T) error) error {
	return db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucket)
		if err != nil {
			return err
		}
		return b.ForEach(nil, func(k, _ []byte) error {
			var v T
			if _, err := getJSON(b, k, &v); err != nil {
				return err
			}
			return fn(string(k), &v)
		})
	})
}

// noteChunk records a completed chunk upload, for resuming a cut push.
func (e *Engine) noteChunk(id string, size int64) error {
	return e.db.Update(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketChunk)
		if err != nil {
			return err
		}
		return putU64(b, id, uint64(size))
	})
}

// chunkUploaded is the stored size of a completed chunk upload, 0 if none.
func (e *Engine) chunkUploaded(id string) (int64, error) {
	var n uint64
	err := e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketChunk)
		if err != nil {
			return err
		}
		n = getU64(b, id)
		return nil
	})
	return int64(n), err
}

// forgetChunks drops the records of chunks no longer on the relay.
func (e *Engine) forgetChunks(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	return e.db.Update(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketChunk)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
}

// sortedKeys lists a map's keys in order. Writes to bbolt go in key order:
// within one transaction every out-of-order insert shifts the bucket's leaf,
// which made the first sync of a big tree quadratic.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
