package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// keyCache is the local keyring cache (PROTOCOL.md §4.1): which slot this
// client opened, a hash of that slot's file, and for a passphrase slot its
// slot key, so a start needs no scrypt. The keyrings themselves are read
// from the relay at every start, so a new epoch is never missed. It is as
// secret as the keyrings: mode 0600 in the client's state folder.
type keyCache struct {
	Format     string `json:"format"`
	Version    int    `json:"version"`
	Repository string `json:"repository"`
	Slot       string `json:"slot"`               // stem: keys/<id>-<hex>
	SlotHash   string `json:"slot_sha256"`        // of <stem>.age as last opened
	SlotKey    string `json:"slot_key,omitempty"` // passphrase slots only
	// Resealed is the newest epoch this client's own long-lived objects were
	// rewritten in (§4.1, retirement).
	Resealed uint32 `json:"resealed,omitempty"`
	// Removed records that this client's slot was removed: the cache then
	// opens nothing and only lets later starts say why.
	Removed bool `json:"removed,omitempty"`
}

const keyCacheFormat = "escale-key-cache"

func slotHash(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// loadKeyCache reads the cache; a missing or unreadable one is nil (the
// caller then unlocks the slow way and rewrites it).
func loadKeyCache(path string) *keyCache {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var c keyCache
	if json.Unmarshal(data, &c) != nil || c.Format != keyCacheFormat || c.Version != 1 {
		return nil
	}
	return &c
}

// saveKeyCache writes the cache atomically with mode 0600: a crash leaves
// the old cache or the new one, never half of one readable by others.
func saveKeyCache(path string, c *keyCache) error {
	if path == "" {
		return nil
	}
	c.Format, c.Version = keyCacheFormat, 1
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("key cache: %w", err)
	}
	f, err := os.CreateTemp(dir, ".keycache-*")
	if err != nil {
		return fmt.Errorf("key cache: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("key cache: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("key cache: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("key cache: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("key cache: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("key cache: %w", err)
	}
	return nil
}
