// Package state holds the local state of one repository: what the scanner last
// saw of each file (the hash cache) and named buckets the engine keeps its own
// records in (synced versions, access modifiers, sequence numbers).
//
// It is one bbolt file per repository. bbolt takes an exclusive file lock, so
// only one escale process can work on a repository at a time; a second one gets
// a clear "in use" error after a short timeout instead of hanging.
//
// Records are binary (encoding/binary) and versioned: the meta bucket holds the
// schema version of the whole file, and each record starts with its own format
// byte. A file written by a newer escale is refused, never misread.
package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout version this code reads and writes.
const SchemaVersion = 1

// lockTimeout bounds the wait for another process's lock on the file: long
// enough to ride out a process that is just closing, short enough for a CLI.
const lockTimeout = time.Second

var (
	metaBucket      = []byte("meta")
	hashCacheBucket = []byte("hashcache")
	schemaKey       = []byte("schema")
)

// userBucketPrefix keeps the engine's named buckets apart from the internal ones.
const userBucketPrefix = "b:"

// ErrInUse is wrapped by Open when another process holds the repository.
var ErrInUse = errors.New("repository is in use by another escale process")

// DB is the open state file of one repository. It is safe for concurrent use.
type DB struct {
	bolt    *bolt.DB
	path    string
	pidPath string
}

// Open opens (creating if needed) the state file at path, creating its parent
// directories. If another process has it open, Open fails after about a second
// with an error wrapping ErrInUse that names that process's pid when known.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory for %s: %w", path, err)
	}
	pidPath := path + ".pid"
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      lockTimeout,
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		who := ""
		if pid := readPid(pidPath); pid > 0 {
			who = fmt.Sprintf(" (pid %d)", pid)
		}
		return nil, fmt.Errorf("open state %s: %w%s; stop it first, or use another state_dir", path, ErrInUse, who)
	}
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	db := &DB{bolt: bdb, path: path, pidPath: pidPath}
	if err := db.init(); err != nil {
		bdb.Close()
		return nil, err
	}
	// Best effort: the pid only makes the "in use" message more helpful.
	_ = os.WriteFile(pidPath, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	return db, nil
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// init checks the schema version, stamping a new file with the current one.
func (db *DB) init() error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return fmt.Errorf("state %s: create meta bucket: %w", db.path, err)
		}
		v := meta.Get(schemaKey)
		switch {
		case v == nil:
			if err := meta.Put(schemaKey, binary.BigEndian.AppendUint32(nil, SchemaVersion)); err != nil {
				return fmt.Errorf("state %s: write schema version: %w", db.path, err)
			}
		case len(v) != 4:
			return fmt.Errorf("state %s: corrupt schema version (%d bytes); move the file aside to rebuild it", db.path, len(v))
		default:
			if got := binary.BigEndian.Uint32(v); got > SchemaVersion {
				return fmt.Errorf("state %s has schema version %d, newer than this escale understands (%d): upgrade escale", db.path, got, SchemaVersion)
			}
		}
		if _, err := tx.CreateBucketIfNotExists(hashCacheBucket); err != nil {
			return fmt.Errorf("state %s: create hash cache bucket: %w", db.path, err)
		}
		return nil
	})
}

// Path is the file the state lives in.
func (db *DB) Path() string { return db.path }

// Close releases the file and its lock.
func (db *DB) Close() error {
	_ = os.Remove(db.pidPath)
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close state %s: %w", db.path, err)
	}
	return nil
}

// Update runs fn in a read-write transaction, committed if fn returns nil.
func (db *DB) Update(fn func(tx *Tx) error) error {
	return db.bolt.Update(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
}

// View runs fn in a read-only transaction.
func (db *DB) View(fn func(tx *Tx) error) error {
	return db.bolt.View(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
}

// ReleaseMapped drops the pages of the state file read so far from the
// process's resident memory (Linux; elsewhere it does nothing). Call it
// after a pass over many records.
func (db *DB) ReleaseMapped() {
	_ = db.bolt.View(func(btx *bolt.Tx) error {
		releaseMapped(btx)
		return nil
	})
}

// ReleaseMapped is DB.ReleaseMapped within a transaction: during a long
// pass, every so many records.
func (t *Tx) ReleaseMapped() { releaseMapped(t.tx) }

// fillPercent is how full a leaf is left when it splits. The engine writes
// in key order (batches sorted before insert), where bbolt's default of one
// half leaves every page half empty: a million-file state then maps twice
// the pages, and every pass over it (the warm scan reads it whole) touches
// them all. Updates in place never split; a later insert between full
// pages splits one, as it would anyway.
const fillPercent = 0.9

// Tx is a transaction over the engine's named buckets.
type Tx struct{ tx *bolt.Tx }

// Bucket returns the bucket called name. In a read-write transaction it is
// created on first use; in a read-only one a missing bucket reads as empty.
func (t *Tx) Bucket(name string) (*Bucket, error) {
	if name == "" {
		return nil, errors.New("state: empty bucket name")
	}
	key := []byte(userBucketPrefix + name)
	b := t.tx.Bucket(key)
	if b == nil && t.tx.Writable() {
		var err error
		if b, err = t.tx.CreateBucket(key); err != nil {
			return nil, fmt.Errorf("state: create bucket %q: %w", name, err)
		}
	}
	if b != nil && t.tx.Writable() {
		b.FillPercent = fillPercent
	}
	return &Bucket{b: b, name: name}, nil
}

// DeleteBucket drops the bucket called name and everything in it; a
// missing bucket is no error.
func (t *Tx) DeleteBucket(name string) error {
	if name == "" {
		return errors.New("state: empty bucket name")
	}
	err := t.tx.DeleteBucket([]byte(userBucketPrefix + name))
	if err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
		return fmt.Errorf("state: delete bucket %q: %w", name, err)
	}
	return nil
}

// Bucket is a named key/value space. Keys sort bytewise.
type Bucket struct {
	b    *bolt.Bucket // nil: missing bucket in a read-only transaction
	name string
}

// Get returns a copy of the value for key, or nil when absent.
func (b *Bucket) Get(key []byte) []byte {
	if b.b == nil {
		return nil
	}
	v := b.b.Get(key)
	if v == nil {
		return nil
	}
	return append([]byte{}, v...)
}

// Put stores value under key.
func (b *Bucket) Put(key, value []byte) error {
	if b.b == nil {
		return fmt.Errorf("state: put into bucket %q: read-only transaction", b.name)
	}
	if err := b.b.Put(key, value); err != nil {
		return fmt.Errorf("state: put into bucket %q: %w", b.name, err)
	}
	return nil
}

// Delete removes key; a missing key is not an error.
func (b *Bucket) Delete(key []byte) error {
	if b.b == nil {
		return fmt.Errorf("state: delete from bucket %q: read-only transaction", b.name)
	}
	if err := b.b.Delete(key); err != nil {
		return fmt.Errorf("state: delete from bucket %q: %w", b.name, err)
	}
	return nil
}

// ForEach calls fn for every key starting with prefix, in key order. k and v
// are valid only during the call. The bucket must not be modified from fn.
func (b *Bucket) ForEach(prefix []byte, fn func(k, v []byte) error) error {
	if b.b == nil {
		return nil
	}
	c := b.b.Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// NextSequence returns the bucket's next integer sequence number (from 1).
// Only in a read-write transaction; the number is kept only if it commits.
func (b *Bucket) NextSequence() (uint64, error) {
	if b.b == nil {
		return 0, fmt.Errorf("state: sequence of bucket %q: read-only transaction", b.name)
	}
	n, err := b.b.NextSequence()
	if err != nil {
		return 0, fmt.Errorf("state: sequence of bucket %q: %w", b.name, err)
	}
	return n, nil
}

func hasPrefix(k, prefix []byte) bool {
	return len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix)
}
