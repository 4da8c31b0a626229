package envelope

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"time"

	"filippo.io/age"
)

// Keyring holds the secrets of one key epoch of a repository. Rotating keys
// (for example after removing a client) creates a new epoch; readers keep the
// old keyrings to open objects written before the rotation.
type Keyring struct {
	RepoID   [16]byte
	Epoch    uint32
	Identity *age.X25519Identity // objects are age-encrypted to its recipient
	MACKey   [32]byte            // authenticates objects: age alone does not
	NameKey  [32]byte            // derives relay names (ObjectName)
	Created  time.Time
}

// NewKeyring generates the keys of a new epoch from crypto/rand.
func NewKeyring(repoID [16]byte, epoch uint32) (*Keyring, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("generate age identity: %w", err)
	}
	kr := &Keyring{
		RepoID:   repoID,
		Epoch:    epoch,
		Identity: id,
		Created:  time.Now().UTC().Truncate(time.Second),
	}
	rand.Read(kr.MACKey[:])
	rand.Read(kr.NameKey[:])
	return kr, nil
}

// Recipient is the public half objects of this epoch are encrypted to.
func (k *Keyring) Recipient() *age.X25519Recipient { return k.Identity.Recipient() }

// nameLen is the length of ObjectName and RandomName: 128 bits in base32.
const nameLen = 26

var nameEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// ObjectName derives a relay name from parts (for example a client id and a
// content hash) with HMAC-SHA256 under NameKey: the same parts always give the
// same name, but without the key a name reveals nothing of the parts and
// cannot be guessed from a path or content. Names are 26 lowercase base32
// characters (128 bits), safe on case-insensitive backends and
// indistinguishable from RandomName.
func (k *Keyring) ObjectName(parts ...[]byte) string {
	m := hmac.New(sha256.New, k.NameKey[:])
	m.Write([]byte("escale object name v1\x00"))
	var lb [binary.MaxVarintLen64]byte
	for _, p := range parts {
		// Length-prefixed so ("ab","c") and ("a","bc") differ.
		m.Write(lb[:binary.PutUvarint(lb[:], uint64(len(p)))])
		m.Write(p)
	}
	return nameEncoding.EncodeToString(m.Sum(nil)[:16])
}

// RandomName returns a fresh random 128-bit name in the ObjectName alphabet.
func RandomName() string {
	var b [16]byte
	rand.Read(b[:])
	return nameEncoding.EncodeToString(b[:])
}
