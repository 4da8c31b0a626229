package engine

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"unicode/utf8"
	"unsafe"

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
	bucketSeenW = "wantseen" // client id → want generation read; "pending/"+id → its items not served yet
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
	n, err := e.u64(bucketChunk, id)
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

// stateView is the part of a fileState record a no-change round compares
// with the scan, read straight from the record's JSON: no reflection and no
// allocation, where decoding every record of a big folder was most of an idle
// round. The strings alias the record's bytes and are valid only while its
// transaction is open.
type stateView struct {
	kind         protocol.ChangeKind
	hash, target string
	mtime        int64
	mode         uint32
}

// viewState reads v, a fileState as putJSON writes it. It reports false
// for anything but a plain record of top-level strings and integers — an
// escaped string, a Have, a Retire, a malformed record —: the caller decodes
// those fully, so the fast path never decides a case the full decoding would
// decide otherwise.
func viewState(v []byte) (sv stateView, ok bool) {
	i := skipSpace(v, 0)
	if i >= len(v) || v[i] != '{' {
		return sv, false
	}
	i = skipSpace(v, i+1)
	if i < len(v) && v[i] == '}' {
		return sv, false // no kind: leave it to the decoder
	}
	hasKind := false
	for {
		key, j, ok := jsonString(v, i)
		if !ok {
			return sv, false
		}
		i = skipSpace(v, j)
		if i >= len(v) || v[i] != ':' {
			return sv, false
		}
		i = skipSpace(v, i+1)
		switch key {
		case "k", "h", "t":
			s, j, ok := jsonString(v, i)
			if !ok {
				return sv, false
			}
			switch key {
			case "k":
				sv.kind, hasKind = protocol.ChangeKind(s), true
			case "h":
				sv.hash = s
			case "t":
				sv.target = s
			}
			i = j
		case "m", "mo":
			n, j, ok := jsonInt(v, i)
			if !ok {
				return sv, false
			}
			if key == "m" {
				sv.mtime = n
			} else {
				if n < 0 || n > 1<<32-1 {
					return sv, false
				}
				sv.mode = uint32(n)
			}
			i = j
		case "v", "by", "s", "c", "p", "o", "r":
			j, ok := skipValue(v, i)
			if !ok {
				return sv, false
			}
			i = j
		default:
			// "hv", "rt", or a key this code does not know (encoding/json
			// also matches keys case-insensitively): decode fully.
			return sv, false
		}
		i = skipSpace(v, i)
		if i >= len(v) {
			return sv, false
		}
		switch v[i] {
		case ',':
			i = skipSpace(v, i+1)
		case '}':
			return sv, hasKind && skipSpace(v, i+1) == len(v)
		default:
			return sv, false
		}
	}
}

func skipSpace(v []byte, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == '\n' || v[i] == '\r') {
		i++
	}
	return i
}

// jsonString reads the string at v[i] without unescaping: a string with a
// backslash, a control byte or invalid UTF-8 (which decoding would replace)
// is refused. The result aliases v.
func jsonString(v []byte, i int) (string, int, bool) {
	if i >= len(v) || v[i] != '"' {
		return "", i, false
	}
	ascii := true
	for j := i + 1; j < len(v); j++ {
		switch c := v[j]; {
		case c == '"':
			if j == i+1 {
				return "", j + 1, true
			}
			if !ascii && !utf8.Valid(v[i+1:j]) {
				return "", j, false
			}
			return unsafe.String(&v[i+1], j-i-1), j + 1, true
		case c == '\\' || c < 0x20:
			return "", j, false
		case c >= 0x80:
			ascii = false
		}
	}
	return "", len(v), false
}

// jsonInt reads an integer that fits an int64; fractions and exponents are
// refused.
func jsonInt(v []byte, i int) (int64, int, bool) {
	neg := i < len(v) && v[i] == '-'
	if neg {
		i++
	}
	start := i
	var n uint64
	for ; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
		if n > (1<<63)/10 {
			return 0, i, false
		}
		n = n*10 + uint64(v[i]-'0')
	}
	if i == start || i-start > 1 && v[start] == '0' || n > 1<<63 || !neg && n == 1<<63 {
		return 0, i, false
	}
	if i < len(v) && (v[i] == '.' || v[i] == 'e' || v[i] == 'E') {
		return 0, i, false
	}
	if neg {
		return -int64(n), i, true
	}
	return int64(n), i, true
}

// skipValue steps over the JSON value at v[i], checking its syntax (not its
// type: a record written by putJSON has the right ones).
func skipValue(v []byte, i int) (int, bool) {
	return skipValueDepth(v, i, 0)
}

func skipValueDepth(v []byte, i, depth int) (int, bool) {
	if i >= len(v) || depth > 64 {
		return i, false
	}
	switch c := v[i]; {
	case c == '"':
		return skipString(v, i)
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		i = skipSpace(v, i+1)
		if i < len(v) && v[i] == end {
			return i + 1, true
		}
		for {
			var ok bool
			if c == '{' {
				if i, ok = skipString(v, i); !ok {
					return i, false
				}
				if i = skipSpace(v, i); i >= len(v) || v[i] != ':' {
					return i, false
				}
				i = skipSpace(v, i+1)
			}
			if i, ok = skipValueDepth(v, i, depth+1); !ok {
				return i, false
			}
			if i = skipSpace(v, i); i >= len(v) {
				return i, false
			}
			switch v[i] {
			case ',':
				i = skipSpace(v, i+1)
			case end:
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == '-' || c >= '0' && c <= '9':
		return skipNumber(v, i)
	}
	for _, lit := range []string{"true", "false", "null"} {
		if len(v)-i >= len(lit) && string(v[i:i+len(lit)]) == lit {
			return i + len(lit), true
		}
	}
	return i, false
}

// skipString steps over a string, checking its escapes.
func skipString(v []byte, i int) (int, bool) {
	if i >= len(v) || v[i] != '"' {
		return i, false
	}
	for i++; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			if i++; i >= len(v) {
				return i, false
			}
			switch v[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(v)-i < 5 {
					return i, false
				}
				for _, h := range v[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

// skipNumber steps over a number as JSON's grammar has it.
func skipNumber(v []byte, i int) (int, bool) {
	digits := func() bool {
		start := i
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		return i > start
	}
	if i < len(v) && v[i] == '-' {
		i++
	}
	if i < len(v) && v[i] == '0' {
		i++
	} else if !digits() {
		return i, false
	}
	if i < len(v) && v[i] == '.' {
		i++
		if !digits() {
			return i, false
		}
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		if !digits() {
			return i, false
		}
	}
	return i, true
}

// metaU64 reads one counter of the meta bucket (seq, clock, ...).
func (e *Engine) metaU64(key string) (uint64, error) { return e.u64(bucketMeta, key) }

// u64 reads one counter of a bucket, 0 if absent.
func (e *Engine) u64(bucket, key string) (uint64, error) {
	var n uint64
	err := e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucket)
		if err != nil {
			return err
		}
		n = getU64(b, key)
		return nil
	})
	return n, err
}
