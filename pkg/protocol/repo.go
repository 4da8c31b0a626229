package protocol

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"filippo.io/age"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/storage"
)

// Limits on what a reader accepts from the relay, so a hostile relay cannot
// exhaust memory. Data objects are streamed and bounded by their manifest.
const (
	MaxManifest  = 64 << 20
	MaxSmallObj  = 16 << 20
	maxMarker    = 64 << 10
	maxKeySlot   = 1 << 20
	passSlotName = "passphrase"
)

// Repo is an open repository on a relay: the storage, the keys, and sealed
// reads and writes of the objects of PROTOCOL.md.
type Repo struct {
	Relay  *storage.Relay
	Marker *Marker
	sealer *envelope.Sealer
	opener *envelope.Opener
	keys   []*envelope.Keyring // every epoch, oldest first; nil when encryption = none
	repoID [16]byte

	creds      Credentials
	slot       *ownSlot // the key slot this client opened
	markerSeen uint32   // highest heads/epoch.<n> seen
	owner      string   // client id whose objects this process reseals (SetOwner)
	resealed   uint32   // newest epoch the owner's long-lived objects were resealed in
	keyErr     error    // set once this client's key was found removed
}

// Credentials open a repository's key slots.
type Credentials struct {
	Passphrase string       // opens a passphrase slot
	Identity   age.Identity // opens an identity slot
	// CacheFile, when set, is the local key cache (0600, in the client's
	// state folder): it spares later starts the scrypt run (keycache.go).
	CacheFile string
}

func (c Credentials) identities() ([]age.Identity, error) {
	var ids []age.Identity
	if c.Passphrase != "" {
		id, err := envelope.PassphraseIdentity(c.Passphrase)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if c.Identity != nil {
		ids = append(ids, c.Identity)
	}
	return ids, nil
}

// ErrNotRepository means the relay folder holds objects but no escale.json.
var ErrNotRepository = errors.New("not an escale relay")

// ErrNoRepository means the relay folder is empty: no repository yet.
var ErrNoRepository = errors.New("no escale repository in this relay folder yet")

// ReadMarker reads escale.json. An empty folder gives ErrNoRepository, a
// folder with other content ErrNotRepository.
func ReadMarker(ctx context.Context, relay *storage.Relay) (*Marker, error) {
	data, err := getAll(ctx, relay, MarkerName, maxMarker)
	if errors.Is(err, storage.ErrNotFound) {
		entries, lerr := relay.List(ctx, "")
		if lerr != nil {
			return nil, fmt.Errorf("list relay %s: %w", relay, lerr)
		}
		if len(entries) == 0 {
			return nil, ErrNoRepository
		}
		return nil, fmt.Errorf("relay %s holds %d entries but no %s: %w; point escale at an empty folder or at an existing escale relay", relay, len(entries), MarkerName, ErrNotRepository)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", MarkerName, err)
	}
	return ParseMarker(data)
}

// Create makes a new repository in an empty relay folder: the key slot(s)
// first, the marker last, so a folder with a marker always has its keys.
// With encrypted false, creds are ignored and the repository is plain.
func Create(ctx context.Context, relay *storage.Relay, encrypted bool, creds Credentials, opts ...envelope.Option) (*Repo, error) {
	return create(ctx, relay, encrypted, creds, nil, opts)
}

// Recreate writes a repository's key slot and marker again into an empty
// relay folder, with the keyrings of an export (`escale key export`): the
// same repository id and keys, so clients that synced it carry on.
func Recreate(ctx context.Context, relay *storage.Relay, creds Credentials, keyrings []*envelope.Keyring, opts ...envelope.Option) (*Repo, error) {
	if len(keyrings) == 0 {
		return nil, errors.New("recreate repository: no keyrings")
	}
	return create(ctx, relay, true, creds, keyrings, opts)
}

func create(ctx context.Context, relay *storage.Relay, encrypted bool, creds Credentials, keyrings []*envelope.Keyring, opts []envelope.Option) (*Repo, error) {
	var repoID [16]byte
	if len(keyrings) > 0 {
		repoID = keyrings[0].RepoID
		for _, kr := range keyrings {
			if kr.RepoID != repoID {
				return nil, errors.New("recreate repository: the keyrings belong to different repositories")
			}
		}
	} else if _, err := rand.Read(repoID[:]); err != nil {
		return nil, err
	}
	m := &Marker{Format: MarkerFormat, Version: Version, Repository: hex.EncodeToString(repoID[:]), Encryption: "none", Created: time.Now().UTC().Truncate(time.Second)}
	r := &Repo{Relay: relay, Marker: m, repoID: repoID}
	if encrypted {
		m.Encryption = "age"
		if creds.Passphrase == "" && creds.Identity == nil {
			return nil, errors.New("create repository: a passphrase or an age identity is needed to encrypt it")
		}
		krs := keyrings
		if len(krs) == 0 {
			kr, err := envelope.NewKeyring(repoID, 1)
			if err != nil {
				return nil, err
			}
			krs = []*envelope.Keyring{kr}
		}
		kr := krs[len(krs)-1]
		r.keys, r.creds = krs, creds
		r.setup()
		if creds.Passphrase != "" {
			if _, err := r.addPassphraseSlot(ctx, passSlotName, creds.Passphrase, "initial passphrase", opts); err != nil {
				return nil, err
			}
		}
		if x, ok := creds.Identity.(*age.X25519Identity); ok {
			id := kr.ObjectName([]byte("identity slot"), []byte(x.Recipient().String()))
			if _, err := r.addIdentitySlot(ctx, id, x.Recipient(), "initial key"); err != nil {
				return nil, err
			}
			if r.slot == nil {
				r.slot = &ownSlot{stem: slotStem(id, repoID), key: x}
			}
		}
	}
	data, _ := json.MarshalIndent(m, "", "  ")
	if _, err := relay.PutIfAbsent(ctx, MarkerName, bytes.NewReader(data), int64(len(data))); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return nil, ErrCreateRaced
		}
		return nil, fmt.Errorf("write %s: %w", MarkerName, err)
	}
	// Where create-if-absent is check-then-put, another client may have
	// overwritten the marker: read it back, and yield if it is not ours.
	if got, err := ReadMarker(ctx, relay); err != nil || got.Repository != m.Repository {
		return nil, ErrCreateRaced
	}
	if r.slot != nil {
		r.unlocked(r.keys, *r.slot) // writes the key cache
	}
	r.setup()
	return r, nil
}

// ErrCreateRaced means another client created the repository at the same
// time; open it instead.
var ErrCreateRaced = errors.New("another client created the repository at the same time")

// slotStem names a key slot, without extension (keys.go). The repository id
// in the name keeps the slots of two clients racing to create a repository
// apart.
func slotStem(id string, repoID [16]byte) string {
	return KeysDir + "/" + id + "-" + hex.EncodeToString(repoID[:8])
}

// Open opens an existing repository, unlocking its keys with creds.
// wantEncrypted is the configured encryption: a mismatch with the relay is an error.
func Open(ctx context.Context, relay *storage.Relay, wantEncrypted bool, creds Credentials) (*Repo, error) {
	m, err := ReadMarker(ctx, relay)
	if err != nil {
		return nil, err
	}
	repoID, _ := m.RepoID()
	r := &Repo{Relay: relay, Marker: m, repoID: repoID}
	if (m.Encryption == "age") != wantEncrypted {
		want := "none"
		if wantEncrypted {
			want = "age"
		}
		return nil, fmt.Errorf("the relay's repository uses encryption %q but the configuration says %q: escale never switches silently; fix the configuration", m.Encryption, want)
	}
	if wantEncrypted {
		r.creds = creds
		if err := r.unlock(ctx); err != nil {
			return nil, err
		}
	}
	r.setup()
	return r, nil
}

func (r *Repo) setup() {
	if r.keys == nil {
		r.sealer = envelope.NewPlainSealer(r.repoID)
		r.opener = envelope.NewPlainOpener(r.repoID)
		return
	}
	r.sealer = envelope.NewSealer(r.keys[len(r.keys)-1])
	r.opener = envelope.NewOpener(r.keys)
}

// ID is the repository id in hex.
func (r *Repo) ID() string { return r.Marker.Repository }

// current is the keyring objects are written with; nil for plain repositories.
func (r *Repo) current() *envelope.Keyring {
	if r.keys == nil {
		return nil
	}
	return r.keys[len(r.keys)-1]
}

// NameKey derives names and chunking parameters; for plain repositories it
// is derived from the repository id (names then hide nothing, as documented).
func (r *Repo) NameKey() [32]byte {
	if k := r.current(); k != nil {
		return k.NameKey
	}
	var nk [32]byte
	copy(nk[:], r.repoID[:])
	copy(nk[16:], "escale-plain-key")
	return nk
}

// CID is the client id of a client name.
func (r *Repo) CID(client string) string {
	if k := r.current(); k != nil {
		return k.ObjectName([]byte("client"), []byte(client))
	}
	kr := envelope.Keyring{NameKey: r.NameKey()}
	return kr.ObjectName([]byte("client"), []byte(client))
}

// ObjectID derives a keyed object id from parts (chunk ids).
func (r *Repo) ObjectID(parts ...[]byte) string {
	kr := envelope.Keyring{NameKey: r.NameKey()}
	return kr.ObjectName(parts...)
}

// PutJSON seals v as JSON under name.
func (r *Repo) PutJSON(ctx context.Context, kind envelope.Kind, name string, v any) (int64, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", name, err)
	}
	sealed, err := r.sealer.SealBytes(kind, name, plain)
	if err != nil {
		return 0, fmt.Errorf("seal %s: %w", name, err)
	}
	if _, err := r.Relay.Put(ctx, name, bytes.NewReader(sealed), int64(len(sealed))); err != nil {
		return 0, err
	}
	return int64(len(sealed)), nil
}

// GetJSON reads, verifies and decodes the sealed object name into v.
func (r *Repo) GetJSON(ctx context.Context, kind envelope.Kind, name string, limit int64, v any) error {
	data, err := getAll(ctx, r.Relay, name, limit+1<<20)
	if err != nil {
		return err
	}
	plain, err := r.opener.OpenBytes(data, kind, name, limit)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(plain, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, name, err)
	}
	return nil
}

// PutStream seals what write produces under name, streaming: nothing is held
// whole in memory. It returns the stored size.
func (r *Repo) PutStream(ctx context.Context, kind envelope.Kind, name string, write func(io.Writer) error) (int64, error) {
	pr, pw := io.Pipe()
	go func() {
		w, err := r.sealer.Seal(pw, kind, name)
		if err == nil {
			err = write(w)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
		}
		pw.CloseWithError(err)
	}()
	e, err := r.Relay.Put(ctx, name, pr, -1)
	pr.CloseWithError(errors.New("upload ended"))
	if err != nil {
		return 0, err
	}
	return e.Size, nil
}

// OpenStream opens the sealed object name for reading. The plaintext is
// authenticated only when the reader returns io.EOF (see envelope.Opener.Open).
func (r *Repo) OpenStream(ctx context.Context, kind envelope.Kind, name string, limit int64) (io.ReadCloser, error) {
	rc, err := r.Relay.Open(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	plain, err := r.opener.Open(rc, kind, name, limit)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{plain, rc}, nil
}

// ListHeads lists heads/: one request, the whole idle poll. A key epoch
// marker newer than this client knows makes it read its key slot again
// first (a removed client gets ErrKeyRemoved here), and a client that owns
// objects (SetOwner) reseals its long-lived ones in a new epoch once.
func (r *Repo) ListHeads(ctx context.Context) ([]Head, error) {
	entries, err := r.Relay.List(ctx, HeadsDir)
	if err != nil {
		return nil, err
	}
	if err := r.noteHeads(ctx, entries); err != nil {
		return nil, err
	}
	heads := make([]Head, 0, len(entries))
	for _, e := range entries {
		if h, ok := ParseHead(path.Base(e.Name)); ok && !e.IsDir {
			heads = append(heads, h)
		}
	}
	return heads, nil
}

// PutHead writes an empty marker.
func (r *Repo) PutHead(ctx context.Context, h Head) error {
	_, err := r.Relay.Put(ctx, h.Name(), bytes.NewReader(nil), 0)
	return err
}

func getAll(ctx context.Context, relay *storage.Relay, name string, limit int64) ([]byte, error) {
	rc, err := relay.Open(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalid, name, limit)
	}
	return data, nil
}
