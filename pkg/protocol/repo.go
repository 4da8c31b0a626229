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
	"runtime/debug"
	"strings"
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
}

// Credentials open a repository's key slots.
type Credentials struct {
	Passphrase string       // opens keys/passphrase.age
	Identity   age.Identity // opens any identity slot
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
	var repoID [16]byte
	if _, err := rand.Read(repoID[:]); err != nil {
		return nil, err
	}
	m := &Marker{Format: MarkerFormat, Version: Version, Repository: hex.EncodeToString(repoID[:]), Encryption: "none", Created: time.Now().UTC().Truncate(time.Second)}
	r := &Repo{Relay: relay, Marker: m, repoID: repoID}
	if encrypted {
		m.Encryption = "age"
		kr, err := envelope.NewKeyring(repoID, 1)
		if err != nil {
			return nil, err
		}
		r.keys = []*envelope.Keyring{kr}
		if creds.Passphrase != "" {
			slot, err := envelope.WrapPassphrase(r.keys, creds.Passphrase, opts...)
			if err != nil {
				return nil, err
			}
			if _, err := relay.Put(ctx, slotName(passSlotName, repoID), bytes.NewReader(slot), int64(len(slot))); err != nil {
				return nil, fmt.Errorf("write key slot: %w", err)
			}
		}
		if x, ok := creds.Identity.(*age.X25519Identity); ok {
			slot, err := envelope.WrapIdentity(r.keys, x.Recipient())
			if err != nil {
				return nil, err
			}
			name := slotName(kr.ObjectName([]byte("identity slot"), []byte(x.Recipient().String())), repoID)
			if _, err := relay.Put(ctx, name, bytes.NewReader(slot), int64(len(slot))); err != nil {
				return nil, fmt.Errorf("write key slot: %w", err)
			}
		}
		if creds.Passphrase == "" && creds.Identity == nil {
			return nil, errors.New("create repository: a passphrase or an age identity is needed to encrypt it")
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
	r.setup()
	return r, nil
}

// ErrCreateRaced means another client created the repository at the same
// time; open it instead.
var ErrCreateRaced = errors.New("another client created the repository at the same time")

// slotName names a key slot. The repository id in the name keeps the slots
// of two clients racing to create a repository apart.
func slotName(label string, repoID [16]byte) string {
	return KeysDir + "/" + label + "-" + hex.EncodeToString(repoID[:8]) + ".age"
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
		ids, err := creds.identities()
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			return nil, errors.New("the repository is encrypted: give passphrase_file, key_file or ESCALE_PASSPHRASE")
		}
		entries, err := relay.List(ctx, KeysDir)
		if err != nil {
			return nil, fmt.Errorf("list key slots: %w", err)
		}
		var damaged, foreign []string
		wrong := 0
		for _, e := range entries {
			if e.IsDir || !strings.HasSuffix(e.Name, ".age") {
				continue
			}
			slot, err := getAll(ctx, relay, e.Name, maxKeySlot)
			if err != nil {
				return nil, fmt.Errorf("read key slot %s: %w", e.Name, err)
			}
			krs, err := envelope.Unwrap(slot, ids...)
			switch {
			case errors.Is(err, envelope.ErrWrongKey):
				wrong++
				continue
			case err != nil:
				damaged = append(damaged, fmt.Sprintf("%s (%v)", e.Name, err))
				continue
			}
			if krs[0].RepoID != repoID {
				// Left by a client that lost a race to create the repository,
				// or the marker or the slot was replaced.
				foreign = append(foreign, e.Name)
				continue
			}
			r.keys = krs
			break
		}
		// A passphrase slot costs scrypt's 256 MiB once; give it back to
		// the OS now rather than carry it for the life of a daemon.
		debug.FreeOSMemory()
		if r.keys == nil {
			switch {
			case len(damaged) > 0:
				return nil, fmt.Errorf("no key slot opens with this key, and %d are damaged: %s; restore keys/ from a backup of the relay (if the passphrase or key is also wrong, fix it too)", len(damaged), strings.Join(damaged, "; "))
			case len(foreign) > 0:
				return nil, fmt.Errorf("key slot %s belongs to another repository than the one %s names: the relay's keys or its marker were replaced; restore them from a backup of the relay", strings.Join(foreign, ", "), MarkerName)
			case wrong == 0:
				return nil, errors.New("the relay has no key slot: it is damaged; restore keys/ from a backup of the relay")
			}
			return nil, fmt.Errorf("%w: no key slot of the relay opens with it; check passphrase_file, key_file or ESCALE_PASSPHRASE", envelope.ErrWrongKey)
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

// ListHeads lists heads/: one request, the whole idle poll.
func (r *Repo) ListHeads(ctx context.Context) ([]Head, error) {
	entries, err := r.Relay.List(ctx, HeadsDir)
	if err != nil {
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
