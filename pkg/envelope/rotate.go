package envelope

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"filippo.io/age"
)

// NextKeyring returns the keyring of the epoch after prev: a new content
// identity and a new MAC key, so a client that knew only prev can neither
// read nor forge what is sealed with it. The naming key is kept: client ids,
// chunk names and the chunker stay the same across epochs, so a rotation
// re-sends nothing (a removed client can still recognise the names of
// contents it already has; docs/SECURITY.md says so).
func NextKeyring(prev *Keyring) (*Keyring, error) {
	if prev == nil || prev.Identity == nil {
		return nil, errors.New("next key epoch: no current keyring")
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("generate age identity: %w", err)
	}
	kr := &Keyring{
		RepoID:   prev.RepoID,
		Epoch:    prev.Epoch + 1,
		Identity: id,
		NameKey:  prev.NameKey,
		Created:  time.Now().UTC().Truncate(time.Second),
	}
	rand.Read(kr.MACKey[:])
	return kr, nil
}

// A passphrase slot is two files: the passphrase (scrypt) opens a small slot
// key, and the slot key's recipient is what the keyrings are encrypted to.
// An admin rotating keys then re-encrypts every slot's keyrings to its
// recipient without knowing anyone else's passphrase.
const (
	slotKeyFormat  = "escale-slot-key"
	slotKeyVersion = 1
)

type slotKeyJSON struct {
	Format   string `json:"format"`
	Version  int    `json:"version"`
	RepoID   []byte `json:"repo_id"`
	Identity string `json:"identity"`
}

// WrapSlotKey encrypts the slot key (an age X25519 identity) of a slot of
// repository repoID with a passphrase through age's scrypt recipient.
// Options: WithScryptWorkFactor.
func WrapSlotKey(key *age.X25519Identity, repoID [16]byte, passphrase string, opts ...Option) ([]byte, error) {
	if key == nil {
		return nil, errors.New("wrap slot key: no key")
	}
	o := buildOptions(opts)
	if o.scryptLogN < 1 || o.scryptLogN > MaxScryptWorkFactor {
		return nil, fmt.Errorf("wrap slot key: scrypt work factor %d outside 1..%d", o.scryptLogN, MaxScryptWorkFactor)
	}
	r, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, fmt.Errorf("wrap slot key: %w", err)
	}
	r.SetWorkFactor(o.scryptLogN)
	plain, err := json.Marshal(slotKeyJSON{Format: slotKeyFormat, Version: slotKeyVersion, RepoID: repoID[:], Identity: key.String()})
	if err != nil {
		return nil, fmt.Errorf("wrap slot key: %w", err)
	}
	return ageEncrypt(plain, r)
}

// maxAgeHeader bounds how much of an object Epoch reads: an escale object
// has one X25519 stanza, a header of about 200 bytes.
const maxAgeHeader = 4 << 10

// Epoch reports the key epoch an object was sealed with, reading only its
// age header (no payload, no MAC: the answer is not authenticated, only
// good enough to decide which epochs the relay still uses). It returns 0
// for plain objects and a *VerifyError with ReasonWrongKey when no known
// epoch opens it.
func (o *Opener) Epoch(src io.Reader, name string) (uint32, error) {
	br := bufio.NewReader(io.LimitReader(src, maxAgeHeader))
	switch {
	case hasPrefix(br, magic):
		return 0, nil
	case !hasPrefix(br, ageMagic):
		return 0, &VerifyError{Name: name, Reason: ReasonNotObject}
	}
	_, kr, err := o.decrypt(br)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) || len(o.krs) == 0 {
			return 0, &VerifyError{Name: name, Reason: ReasonWrongKey}
		}
		return 0, &VerifyError{Name: name, Reason: ReasonCorrupt, Err: err}
	}
	return kr.Epoch, nil
}

// SlotContent is what a key slot file holds: keyrings (identity slots, and
// passphrase slots written before slot keys existed), or a passphrase
// slot's slot key, whose recipient the keyrings are then encrypted to in a
// separate file. Exactly one of Keyrings and Key is set.
type SlotContent struct {
	Keyrings []*Keyring
	Key      *age.X25519Identity
	RepoID   [16]byte // the repository the slot belongs to
}

// OpenSlot opens a key slot file with the first identity that fits. Errors
// are as Unwrap's.
func OpenSlot(data []byte, ids ...age.Identity) (*SlotContent, error) {
	if len(ids) == 0 {
		return nil, errors.New("open key slot: no passphrase or key given")
	}
	for _, id := range ids {
		if s, ok := id.(*age.ScryptIdentity); ok {
			s.SetMaxWorkFactor(MaxScryptWorkFactor)
		}
	}
	plain, err := ageDecrypt(data, ids)
	if err != nil {
		return nil, fmt.Errorf("open key slot: %w", err)
	}
	var probe struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(plain, &probe); err != nil {
		return nil, fmt.Errorf("open key slot: %w: %v", ErrCorruptSlot, err)
	}
	if probe.Format != slotKeyFormat {
		krs, err := decodeSlot(plain)
		if err != nil {
			return nil, fmt.Errorf("open key slot: %w", err)
		}
		return &SlotContent{Keyrings: krs, RepoID: krs[0].RepoID}, nil
	}
	var s slotKeyJSON
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, fmt.Errorf("open key slot: %w: %v", ErrCorruptSlot, err)
	}
	if s.Version != slotKeyVersion {
		return nil, fmt.Errorf("open key slot (version %d, this escale reads %d): %w: upgrade escale", s.Version, slotKeyVersion, ErrUnknownVersion)
	}
	if len(s.RepoID) != 16 {
		return nil, fmt.Errorf("open key slot: %w: repository id of %d bytes", ErrCorruptSlot, len(s.RepoID))
	}
	key, err := age.ParseX25519Identity(s.Identity)
	if err != nil {
		return nil, fmt.Errorf("open key slot: %w: %v", ErrCorruptSlot, err)
	}
	c := &SlotContent{Key: key}
	copy(c.RepoID[:], s.RepoID)
	return c, nil
}
