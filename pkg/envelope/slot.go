package envelope

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"filippo.io/age"
)

// Key slot errors; test with errors.Is.
var (
	ErrWrongKey       = errors.New("wrong passphrase or key for this repository")
	ErrCorruptSlot    = errors.New("key slot is corrupted")
	ErrUnknownVersion = errors.New("key slot was written by a newer escale")
)

const (
	// DefaultScryptWorkFactor is the log2 scrypt cost of new passphrase slots
	// (age's default: about a second, 256 MiB).
	DefaultScryptWorkFactor = 18
	// MaxScryptWorkFactor is the highest cost Unwrap accepts (2^19: about two
	// seconds and 512 MiB): a hostile relay cannot make a client hang or
	// exhaust memory with a slot demanding more.
	MaxScryptWorkFactor = 19

	slotFormat  = "escale-keyring"
	slotVersion = 1
	maxSlotSize = 1 << 20
)

// slotJSON is the serialised form of keyrings inside a key slot.
type slotJSON struct {
	Format   string        `json:"format"`
	Version  int           `json:"version"`
	Keyrings []keyringJSON `json:"keyrings"`
}

type keyringJSON struct {
	RepoID   []byte    `json:"repo_id"`
	Epoch    uint32    `json:"epoch"`
	Identity string    `json:"identity"`
	MACKey   []byte    `json:"mac_key"`
	NameKey  []byte    `json:"name_key"`
	Created  time.Time `json:"created"`
}

// WrapPassphrase returns a key slot holding krs (any order; one repository,
// distinct epochs), encrypted with age's scrypt
// recipient. Options: WithScryptWorkFactor (tests only lower it).
func WrapPassphrase(krs []*Keyring, passphrase string, opts ...Option) ([]byte, error) {
	o := buildOptions(opts)
	if o.scryptLogN < 1 || o.scryptLogN > MaxScryptWorkFactor {
		return nil, fmt.Errorf("wrap key slot: scrypt work factor %d outside 1..%d", o.scryptLogN, MaxScryptWorkFactor)
	}
	r, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, fmt.Errorf("wrap key slot: %w", err)
	}
	r.SetWorkFactor(o.scryptLogN)
	return wrap(krs, r)
}

// WrapIdentity returns a key slot holding krs, encrypted to recipient (for
// example a client's own age X25519 key).
func WrapIdentity(krs []*Keyring, recipient age.Recipient) ([]byte, error) {
	if recipient == nil {
		return nil, errors.New("wrap key slot: no recipient")
	}
	return wrap(krs, recipient)
}

func wrap(krs []*Keyring, r age.Recipient) ([]byte, error) {
	plain, err := MarshalKeyrings(krs)
	if err != nil {
		return nil, fmt.Errorf("wrap key slot: %w", err)
	}
	return ageEncrypt(plain, r)
}

// MarshalKeyrings returns the plaintext of a key slot holding krs: JSON with
// every secret in clear. Only the local keyring cache stores it unencrypted.
func MarshalKeyrings(krs []*Keyring) ([]byte, error) {
	krs = slices.Clone(krs)
	slices.SortFunc(krs, func(a, b *Keyring) int {
		if a == nil || b == nil {
			return 0 // checkKeyrings reports it
		}
		return cmp.Compare(a.Epoch, b.Epoch)
	})
	if err := checkKeyrings(krs); err != nil {
		return nil, err
	}
	s := slotJSON{Format: slotFormat, Version: slotVersion}
	for _, k := range krs {
		s.Keyrings = append(s.Keyrings, keyringJSON{
			RepoID:   k.RepoID[:],
			Epoch:    k.Epoch,
			Identity: k.Identity.String(),
			MACKey:   k.MACKey[:],
			NameKey:  k.NameKey[:],
			Created:  k.Created,
		})
	}
	return json.Marshal(s)
}

// UnmarshalKeyrings parses what MarshalKeyrings wrote, oldest epoch first.
func UnmarshalKeyrings(plain []byte) ([]*Keyring, error) {
	if len(plain) > maxSlotSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCorruptSlot, maxSlotSize)
	}
	return decodeSlot(plain)
}

func ageEncrypt(plain []byte, r age.Recipient) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		return nil, fmt.Errorf("wrap key slot: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("wrap key slot: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("wrap key slot: %w", err)
	}
	return buf.Bytes(), nil
}

// PassphraseIdentity returns the identity that opens passphrase slots, with
// the scrypt cost bounded by MaxScryptWorkFactor.
func PassphraseIdentity(passphrase string) (age.Identity, error) {
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	id.SetMaxWorkFactor(MaxScryptWorkFactor)
	return id, nil
}

// Unwrap opens a key slot with the first identity that fits (a passphrase
// from PassphraseIdentity, or an *age.X25519Identity) and returns its
// keyrings, oldest epoch first. Passphrase slots cost one scrypt run: unwrap
// once per process start and keep the keyrings. Any *age.ScryptIdentity among
// ids gets its accepted work factor set to MaxScryptWorkFactor, so a hostile
// slot cannot demand hours of scrypt or gigabytes of memory.
func Unwrap(slot []byte, ids ...age.Identity) ([]*Keyring, error) {
	return unwrap(slot, MaxScryptWorkFactor, ids...)
}

func unwrap(slot []byte, maxLogN int, ids ...age.Identity) ([]*Keyring, error) {
	if len(ids) == 0 {
		return nil, errors.New("unwrap key slot: no passphrase or key given")
	}
	for _, id := range ids {
		if s, ok := id.(*age.ScryptIdentity); ok {
			s.SetMaxWorkFactor(maxLogN)
		}
	}
	plain, err := ageDecrypt(slot, ids)
	if err != nil {
		return nil, fmt.Errorf("unwrap key slot: %w", err)
	}
	krs, err := decodeSlot(plain)
	if err != nil {
		return nil, fmt.Errorf("unwrap key slot: %w", err)
	}
	return krs, nil
}

func decodeSlot(plain []byte) ([]*Keyring, error) {
	var s slotJSON
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptSlot, err)
	}
	if s.Format != slotFormat {
		return nil, fmt.Errorf("%w: not an escale keyring (format %q)", ErrCorruptSlot, s.Format)
	}
	if s.Version != slotVersion {
		return nil, fmt.Errorf("%w (version %d, this escale reads %d): upgrade escale", ErrUnknownVersion, s.Version, slotVersion)
	}
	krs := make([]*Keyring, 0, len(s.Keyrings))
	for i, j := range s.Keyrings {
		if len(j.RepoID) != 16 || len(j.MACKey) != 32 || len(j.NameKey) != 32 {
			return nil, fmt.Errorf("%w: keyring %d has keys of the wrong size", ErrCorruptSlot, i)
		}
		id, err := age.ParseX25519Identity(j.Identity)
		if err != nil {
			return nil, fmt.Errorf("%w: keyring %d: %v", ErrCorruptSlot, i, err)
		}
		k := &Keyring{Epoch: j.Epoch, Identity: id, Created: j.Created}
		copy(k.RepoID[:], j.RepoID)
		copy(k.MACKey[:], j.MACKey)
		copy(k.NameKey[:], j.NameKey)
		krs = append(krs, k)
	}
	if err := checkKeyrings(krs); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptSlot, err)
	}
	return krs, nil
}

// ageDecrypt opens a small age file with the first identity that fits.
func ageDecrypt(data []byte, ids []age.Identity) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(data), ids...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, fmt.Errorf("%w (check the passphrase or key file)", ErrWrongKey)
		}
		return nil, fmt.Errorf("%w: %v", ErrCorruptSlot, err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, maxSlotSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptSlot, err)
	}
	if len(plain) > maxSlotSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrCorruptSlot, maxSlotSize)
	}
	return plain, nil
}

// checkKeyrings requires keyrings of one repository with strictly
// increasing epochs.
func checkKeyrings(krs []*Keyring) error {
	if len(krs) == 0 {
		return errors.New("no keyrings")
	}
	for i, k := range krs {
		switch {
		case k == nil || k.Identity == nil:
			return fmt.Errorf("keyring %d has no identity", i)
		case k.RepoID != krs[0].RepoID:
			return fmt.Errorf("keyring %d belongs to another repository", i)
		case i > 0 && k.Epoch <= krs[i-1].Epoch:
			return fmt.Errorf("keyring epochs must increase (keyring %d has epoch %d)", i, k.Epoch)
		}
	}
	return nil
}
