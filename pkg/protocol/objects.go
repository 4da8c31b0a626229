package protocol

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"time"

	"github.com/escale-sync/escale/pkg/localfs"
)

// Marker is escale.json, the plaintext marker of a relay (PROTOCOL.md §3).
type Marker struct {
	Format     string    `json:"format"`
	Version    int       `json:"version"`
	Repository string    `json:"repository"` // 32 hex digits
	Encryption string    `json:"encryption"` // "age" or "none"
	Created    time.Time `json:"created"`
}

// MarkerFormat is the Format of every escale marker.
const MarkerFormat = "escale-relay"

// ParseMarker decodes and checks escale.json.
func ParseMarker(data []byte) (*Marker, error) {
	var m Marker
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w", MarkerName, err)
	}
	if m.Format != MarkerFormat {
		return nil, fmt.Errorf("%s does not mark an escale relay (format %q)", MarkerName, m.Format)
	}
	if m.Version > Version {
		return nil, fmt.Errorf("the relay uses format version %d; this escale reads version %d: upgrade escale", m.Version, Version)
	}
	if m.Version < 1 {
		return nil, fmt.Errorf("%s: bad version %d", MarkerName, m.Version)
	}
	if _, err := m.RepoID(); err != nil {
		return nil, err
	}
	if m.Encryption != "age" && m.Encryption != "none" {
		return nil, fmt.Errorf("%s: unknown encryption %q", MarkerName, m.Encryption)
	}
	return &m, nil
}

// RepoID decodes the repository id.
func (m *Marker) RepoID() ([16]byte, error) {
	var id [16]byte
	b, err := hex.DecodeString(m.Repository)
	if err != nil || len(b) != 16 {
		return id, fmt.Errorf("%s: bad repository id %q", MarkerName, m.Repository)
	}
	copy(id[:], b)
	return id, nil
}

// ChangeKind says what a change does to a path.
type ChangeKind string

// The kinds of change.
const (
	KindFile    ChangeKind = "file"
	KindSymlink ChangeKind = "symlink"
	KindDelete  ChangeKind = "delete"
	// KindPart carries chunks of a file too big for the relay's free
	// space: pullers keep them aside until the file's own change arrives.
	KindPart ChangeKind = "part"
)

// Ref locates bytes of a file in a data object: a slice of a pack's
// plaintext, or a whole chunk.
type Ref struct {
	Obj  string `json:"obj"`            // data object id (in the pusher's data/)
	Off  int64  `json:"off,omitempty"`  // offset in the object's plaintext
	Len  int64  `json:"len"`            // stored length at Off
	Size int64  `json:"size"`           // plaintext length once decompressed
	Z    bool   `json:"z,omitempty"`    // zstd-compressed on its own
	Hash string `json:"hash,omitempty"` // BLAKE3 of the plaintext (chunks)
}

// Change is one entry of a manifest or an index page.
type Change struct {
	Path    string     `json:"path"`
	Kind    ChangeKind `json:"kind"`
	Version Vector     `json:"version"`
	By      string     `json:"by"`               // name of the client that made this version
	Hash    string     `json:"hash,omitempty"`   // BLAKE3-256 hex of the content (file) or target (symlink)
	Size    int64      `json:"size,omitempty"`   // plaintext size
	MTime   int64      `json:"mtime,omitempty"`  // Unix nanoseconds
	Mode    uint32     `json:"mode,omitempty"`   // permission bits
	Target  string     `json:"target,omitempty"` // symlink target
	From    string     `json:"from,omitempty"`   // a rename: the old path
	Data    []Ref      `json:"data,omitempty"`
	// Origin is the version whose content this one carries when it differs
	// from Version: a conflict resolution re-publishes the winner's content
	// under a vector that dominates the losers (PROTOCOL.md §6).
	Origin Vector `json:"origin,omitempty"`
	// Rivals (index entries only) are the other concurrent versions of the
	// path the client knows, which lost to this one.
	Rivals []Rival `json:"rivals,omitempty"`
	// Lacks (index entries only): the indexing client knows this version
	// but waits for its content itself, so a client catching up from the
	// index asks the version's author for it instead (PROTOCOL.md §9).
	Lacks bool `json:"lacks,omitempty"`
}

// Rival is a concurrent version of a path that lost the conflict rules.
type Rival struct {
	Version Vector     `json:"version"`
	Origin  Vector     `json:"origin,omitempty"`
	Kind    ChangeKind `json:"kind"`
	By      string     `json:"by"`
	Hash    string     `json:"hash,omitempty"`
	Size    int64      `json:"size,omitempty"`
	MTime   int64      `json:"mtime,omitempty"`
	Mode    uint32     `json:"mode,omitempty"`
}

// MaxRivals bounds the rivals of one index entry.
const MaxRivals = 64

func validVector(v Vector, path, what string) error {
	if len(v) == 0 {
		return invalid("%q has no %s", path, what)
	}
	for id := range v {
		if !ValidCID(id) {
			return invalid("%q: bad client id %q in %s", path, id, what)
		}
	}
	return nil
}

func validKindHash(k ChangeKind, hash, path string) error {
	switch k {
	case KindDelete:
		return nil
	case KindFile, KindSymlink, KindPart:
	default:
		return invalid("%q: unknown kind %q", path, k)
	}
	if b, err := hex.DecodeString(hash); err != nil || len(b) != 32 {
		return invalid("%q: bad hash", path)
	}
	return nil
}

// Manifest is one update of a client (PROTOCOL.md §5).
type Manifest struct {
	V       int       `json:"v"`
	Client  string    `json:"client"`
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Epoch   uint32    `json:"epoch"`
	Clock   uint64    `json:"clock"`   // the pusher's Lamport clock after this manifest
	Pullers []string  `json:"pullers"` // expected pullers (client ids); empty: any Need clients
	Need    int       `json:"need"`    // acknowledgements needed before the data may go
	Changes []Change  `json:"changes"`
	Objects []string  `json:"objects,omitempty"` // data object ids introduced here
}

// ErrInvalid marks relay content that is well-sealed but malformed.
var ErrInvalid = errors.New("invalid relay object")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Validate checks a manifest read as seq from a client, before anything in
// it is used. Names are held to the rules of every OS (localfs.Portable);
// goos is the local OS, kept for rules that may depend on it.
func (m *Manifest) Validate(seq uint64, goos string) error {
	if !Readable(m.V) {
		return invalid("manifest version %d, this escale reads %d to %d: upgrade escale", m.V, MinVersion, Version)
	}
	if m.Seq != seq {
		return invalid("manifest says seq %d but is stored as %d", m.Seq, seq)
	}
	if m.Need < 0 || m.Need > 1<<16 {
		return invalid("bad puller count %d", m.Need)
	}
	for _, p := range m.Pullers {
		if !ValidCID(p) {
			return invalid("bad puller id %q", p)
		}
	}
	for _, o := range m.Objects {
		if !ValidObjectID(o) {
			return invalid("bad object id %q", o)
		}
	}
	seen := make(map[string]bool, len(m.Changes))
	leaves := map[string]bool{} // paths this manifest makes files or symlinks
	for i := range m.Changes {
		c := &m.Changes[i]
		if err := c.Validate(goos); err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		if seen[c.Path] {
			return invalid("path %q appears twice", c.Path)
		}
		seen[c.Path] = true
		if c.Kind != KindDelete {
			leaves[c.Path] = true
		}
	}
	// A path below another path of the same manifest that is a file or a
	// symlink would be written through it: refuse the whole manifest.
	for p := range leaves {
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if leaves[dir] {
				return invalid("%q lies below %q, which the same update makes a file or symlink", p, dir)
			}
		}
	}
	return nil
}

// Validate checks one change: its path against PROTOCOL.md §10, its fields
// against its kind.
func (c *Change) Validate(goos string) error { return c.validate(goos, true) }

// validate checks a change; index entries (withData false) carry no data.
func (c *Change) validate(goos string, withData bool) error {
	// Names this OS cannot hold are the engine's to skip (one file, not
	// the whole manifest); these rules make a name hostile anywhere.
	if err := localfs.ValidName(c.Path, localfs.Portable); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.From != "" {
		if err := localfs.ValidName(c.From, localfs.Portable); err != nil {
			return fmt.Errorf("%w: rename source: %v", ErrInvalid, err)
		}
	}
	if err := validVector(c.Version, c.Path, "version"); err != nil {
		return err
	}
	if c.Origin != nil {
		if err := validVector(c.Origin, c.Path, "origin"); err != nil {
			return err
		}
	}
	if len(c.Rivals) > MaxRivals {
		return invalid("%q: %d rivals, at most %d", c.Path, len(c.Rivals), MaxRivals)
	}
	for _, r := range c.Rivals {
		if err := validVector(r.Version, c.Path, "rival version"); err != nil {
			return err
		}
		if r.Origin != nil {
			if err := validVector(r.Origin, c.Path, "rival origin"); err != nil {
				return err
			}
		}
		if err := validKindHash(r.Kind, r.Hash, c.Path); err != nil {
			return err
		}
		if r.Kind == KindPart {
			return invalid("%q: a rival cannot be a part", c.Path)
		}
	}
	if c.Lacks && (withData || c.Kind != KindFile) {
		return invalid("%q: only an index entry of a file may lack its content", c.Path)
	}
	if err := validKindHash(c.Kind, c.Hash, c.Path); err != nil || c.Kind == KindDelete {
		return err
	}
	if c.Kind == KindPart && (!withData || c.From != "" || len(c.Rivals) > 0 || c.Origin != nil) {
		return invalid("%q: a part belongs in a manifest, alone", c.Path)
	}
	if c.Size < 0 {
		return invalid("%q: negative size", c.Path)
	}
	if c.Kind == KindSymlink {
		if c.Target == "" {
			return invalid("%q: symlink without target", c.Path)
		}
		return nil
	}
	if !withData {
		return nil
	}
	var total int64
	for _, r := range c.Data {
		if !ValidObjectID(r.Obj) || r.Off < 0 || r.Len < 0 || r.Size < 0 || r.Len > math.MaxInt64-r.Off {
			return invalid("%q: bad data reference", c.Path)
		}
		if r.Size > c.Size-total { // total never exceeds c.Size: no overflow
			if r.Size <= math.MaxInt64-total {
				return invalid("%q: data references hold %d bytes for a %d-byte file", c.Path, total+r.Size, c.Size)
			}
			return invalid("%q: data references hold more bytes than the %d-byte file", c.Path, c.Size)
		}
		total += r.Size
	}
	if c.From == "" && c.Kind != KindPart && total != c.Size {
		return invalid("%q: data references hold %d bytes for a %d-byte file", c.Path, total, c.Size)
	}
	return nil
}

// Acks is a puller's acknowledgements (PROTOCOL.md §8).
type Acks struct {
	V       int               `json:"v"`
	Gen     uint64            `json:"gen"` // equals the generation of the client's ack head
	Client  string            `json:"client"`
	Time    time.Time         `json:"time"`
	Applied map[string]uint64 `json:"applied"` // pusher id → last seq applied
}

// ClientInfo is a client's record, clients/<cid>/info.
type ClientInfo struct {
	V       int       `json:"v"`
	Name    string    `json:"name"`
	Mode    string    `json:"mode"`
	Pulls   bool      `json:"pulls"`
	Created time.Time `json:"created"`
}

// IndexRoot lists a client's index pages (PROTOCOL.md §9).
type IndexRoot struct {
	V     int       `json:"v"`
	Seq   uint64    `json:"seq"`   // the last manifest the index covers
	Clock uint64    `json:"clock"` // the client's Lamport clock then
	Pages []PageRef `json:"pages"`
}

// PageRef names one generation of an index page.
type PageRef struct {
	ID  string `json:"id"`
	Gen uint64 `json:"gen"`
}

// IndexPage holds the entries of one page, sorted by path.
type IndexPage struct {
	V       int      `json:"v"`
	Entries []Change `json:"entries"`
}

// Wants is a client's request that holders publish again content it lacks
// (a late joiner, or a client that was away too long; PROTOCOL.md §9).
type Wants struct {
	V      int        `json:"v"`
	Client string     `json:"client"`
	Items  []WantItem `json:"items"`
}

// WantItem asks one holder for one version of a path.
type WantItem struct {
	Path   string `json:"path"`
	Hash   string `json:"hash"`
	Holder string `json:"holder"` // the client id asked to republish it
}

// Validate checks a wants object before use.
func (w *Wants) Validate(goos string) error {
	if !Readable(w.V) {
		return invalid("wants version %d", w.V)
	}
	for _, it := range w.Items {
		if err := localfs.ValidName(it.Path, localfs.Portable); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if !ValidCID(it.Holder) {
			return invalid("bad holder id %q", it.Holder)
		}
	}
	return nil
}

// Validate checks an index page before use.
func (p *IndexPage) Validate(goos string) error {
	if !Readable(p.V) {
		return invalid("index page version %d", p.V)
	}
	for i := range p.Entries {
		c := &p.Entries[i]
		if c.From != "" || len(c.Data) > 0 {
			return invalid("index entry %q carries data", c.Path)
		}
		if err := c.validate(goos, false); err != nil {
			return err
		}
	}
	return nil
}
