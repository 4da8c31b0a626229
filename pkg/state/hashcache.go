package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// FileRecord is what the scanner last saw of a regular file. If a file's stat
// still matches its record, the scanner reuses Hash instead of reading it.
type FileRecord struct {
	Size         int64
	ModTimeNs    int64
	ChangeTimeNs int64 // inode change time where the OS has one, else 0
	Inode        uint64
	Mode         uint32
	Hash         [32]byte
	CheckedAt    int64 // unix ns of the stat the hash was taken under
}

// recordFormat is the first byte of every encoded FileRecord.
const recordFormat = 1

const recordLen = 1 + 8 + 8 + 8 + 8 + 4 + 8 + 32

func (r *FileRecord) marshal() []byte {
	b := make([]byte, 0, recordLen)
	b = append(b, recordFormat)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(r.ModTimeNs))
	b = binary.BigEndian.AppendUint64(b, uint64(r.ChangeTimeNs))
	b = binary.BigEndian.AppendUint64(b, r.Inode)
	b = binary.BigEndian.AppendUint32(b, r.Mode)
	b = binary.BigEndian.AppendUint64(b, uint64(r.CheckedAt))
	return append(b, r.Hash[:]...)
}

func (r *FileRecord) unmarshal(b []byte) error {
	if len(b) == 0 || b[0] != recordFormat {
		var f byte
		if len(b) > 0 {
			f = b[0]
		}
		return fmt.Errorf("hash cache record format %d unknown (this escale writes %d): upgrade escale", f, recordFormat)
	}
	if len(b) != recordLen {
		return fmt.Errorf("hash cache record: %d bytes, want %d", len(b), recordLen)
	}
	b = b[1:]
	r.Size = int64(binary.BigEndian.Uint64(b[0:]))
	r.ModTimeNs = int64(binary.BigEndian.Uint64(b[8:]))
	r.ChangeTimeNs = int64(binary.BigEndian.Uint64(b[16:]))
	r.Inode = binary.BigEndian.Uint64(b[24:])
	r.Mode = binary.BigEndian.Uint32(b[32:])
	r.CheckedAt = int64(binary.BigEndian.Uint64(b[36:]))
	copy(r.Hash[:], b[44:])
	return nil
}

// HashCache maps slash-separated paths relative to the repository root to
// FileRecords.
//
// Keys are "dir\x00name", so the children of one directory are contiguous and
// sorted by name: the scanner reads a whole directory's records with one cursor
// walk in one read transaction (LookupDir) instead of one lookup per file.
type HashCache struct {
	db *DB
	// looked counts the records LookupDir read, to release their pages
	// every releaseEvery (a scan reads the record of every file).
	looked atomic.Int64
}

// releaseEvery is how many records are read between two releases of the
// state file's pages from the resident set (ReleaseMapped): a few MB.
const releaseEvery = 16384

// HashCache returns the repository's hash cache.
func (db *DB) HashCache() *HashCache { return &HashCache{db: db} }

// KV is one path and its record, for batched writes.
type KV struct {
	Path   string
	Record FileRecord
}

func cacheKey(path string) ([]byte, error) {
	if path == "" || strings.HasPrefix(path, "/") || strings.IndexByte(path, 0) >= 0 {
		return nil, fmt.Errorf("hash cache: invalid path %q", path)
	}
	dir, name := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir, name = path[:i], path[i+1:]
	}
	if name == "" {
		return nil, fmt.Errorf("hash cache: invalid path %q", path)
	}
	k := make([]byte, 0, len(path)+1)
	k = append(k, dir...)
	k = append(k, 0)
	return append(k, name...), nil
}

func dirPrefix(dir string) []byte {
	return append([]byte(dir), 0)
}

// Get returns the record for path, and whether there is one.
func (c *HashCache) Get(path string) (FileRecord, bool, error) {
	var r FileRecord
	key, err := cacheKey(path)
	if err != nil {
		return r, false, err
	}
	found := false
	err = c.db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(hashCacheBucket).Get(key)
		if v == nil {
			return nil
		}
		found = true
		return r.unmarshal(v)
	})
	if err != nil {
		return FileRecord{}, false, fmt.Errorf("hash cache get %s: %w", path, err)
	}
	return r, found, nil
}

// Put stores the record for path.
func (c *HashCache) Put(path string, r FileRecord) error {
	return c.Write([]KV{{Path: path, Record: r}}, nil)
}

// Delete drops the record for path; a missing record is not an error.
func (c *HashCache) Delete(path string) error {
	return c.Write(nil, []string{path})
}

// PutBatch stores many records in one transaction (one fsync).
func (c *HashCache) PutBatch(kvs []KV) error {
	return c.Write(kvs, nil)
}

// Write stores puts and drops deletes in one transaction.
func (c *HashCache) Write(puts []KV, deletes []string) error {
	if len(puts) == 0 && len(deletes) == 0 {
		return nil
	}
	err := c.db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(hashCacheBucket)
		b.FillPercent = fillPercent // written a directory at a time, in key order
		for _, kv := range puts {
			key, err := cacheKey(kv.Path)
			if err != nil {
				return err
			}
			if err := b.Put(key, kv.Record.marshal()); err != nil {
				return fmt.Errorf("put %s: %w", kv.Path, err)
			}
		}
		for _, p := range deletes {
			key, err := cacheKey(p)
			if err != nil {
				return err
			}
			if err := b.Delete(key); err != nil {
				return fmt.Errorf("delete %s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("hash cache write: %w", err)
	}
	return nil
}

// LookupDir reads, in one read transaction, the records of the children of
// dir ("" for the root) named in names, which must be sorted ascending
// (bytewise) without duplicates. It fills out[i] and found[i] for names[i],
// and returns the names of cached children that are not in names (stale).
func (c *HashCache) LookupDir(dir string, names []string, out []FileRecord, found []bool) (stale []string, err error) {
	if len(out) < len(names) || len(found) < len(names) {
		return nil, errors.New("hash cache lookup: out and found must be as long as names")
	}
	prefix := dirPrefix(dir)
	err = c.db.bolt.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(hashCacheBucket).Cursor()
		i := 0
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			name := k[len(prefix):]
			for i < len(names) && names[i] < string(name) {
				found[i] = false
				i++
			}
			if i < len(names) && names[i] == string(name) {
				if err := out[i].unmarshal(v); err != nil {
					return fmt.Errorf("%s: %w", joinPath(dir, names[i]), err)
				}
				found[i] = true
				i++
				continue
			}
			stale = append(stale, string(name))
		}
		for ; i < len(names); i++ {
			found[i] = false
		}
		n := int64(len(names))
		if after := c.looked.Add(n); after/releaseEvery != (after-n)/releaseEvery {
			releaseMapped(tx)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hash cache lookup in %q: %w", dir, err)
	}
	return stale, nil
}

// PruneDirs drops the records of every directory for which keep returns false
// (keep gets "" for the root) and returns how many records it dropped. It
// visits each cached directory once, seeking past its records, so it costs
// O(directories), not O(files), when there is nothing to drop.
func (c *HashCache) PruneDirs(keep func(dir string) bool) (int, error) {
	var drop []string
	err := c.db.bolt.View(func(tx *bolt.Tx) error {
		defer releaseMapped(tx) // a page or two of every directory was read
		cur := tx.Bucket(hashCacheBucket).Cursor()
		dirs := 0
		for k, _ := cur.First(); k != nil; {
			if dirs++; dirs%1024 == 0 {
				releaseMapped(tx)
			}
			i := bytes.IndexByte(k, 0)
			if i < 0 {
				return fmt.Errorf("hash cache: malformed key %q", k)
			}
			dir := string(k[:i])
			if !keep(dir) {
				drop = append(drop, dir)
			}
			k, _ = cur.Seek(append([]byte(dir), 1))
		}
		return nil
	})
	if err != nil || len(drop) == 0 {
		if err != nil {
			err = fmt.Errorf("hash cache prune: %w", err)
		}
		return 0, err
	}
	n := 0
	err = c.db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(hashCacheBucket)
		for _, dir := range drop {
			prefix := dirPrefix(dir)
			var keys [][]byte
			cur := b.Cursor()
			for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
				keys = append(keys, append([]byte{}, k...))
			}
			// Deleting behind a live cursor can skip keys in bbolt; delete after.
			for _, k := range keys {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n += len(keys)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("hash cache prune: %w", err)
	}
	return n, nil
}

// Len returns the number of records.
func (c *HashCache) Len() (int, error) {
	n := 0
	err := c.db.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(hashCacheBucket).Stats().KeyN
		return nil
	})
	return n, err
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
