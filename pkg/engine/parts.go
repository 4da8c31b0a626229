package engine

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/zeebo/blake3"

	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/state"
	"github.com/escale-sync/escale/pkg/storage"
)

// A file bigger than the relay's free space cannot wait for room: its
// chunks would fill the quota and no puller could take them, since they
// belong to no published version. The pusher publishes what fits as a
// "part" (PROTOCOL.md §12); pullers keep those chunks in a staging folder
// and acknowledge, so the pusher can collect them and send the next ones.
// The file's own change comes last and finds the early chunks staged.

// bucketParts: path → delivered, the chunks of a file already sent as parts.
const bucketParts = "parts"

// stagingMaxAge: staged chunks of a transfer that never completed go after
// this long.
const stagingMaxAge = 30 * 24 * time.Hour

type delivered struct {
	Hash   string   `json:"hash"`   // the whole file's content hash
	Chunks []string `json:"chunks"` // chunk hashes published as parts
}

func (e *Engine) stagingDir() string { return filepath.Join(e.opts.StateDir, "staging") }

// stage keeps the chunks of a part.
func (p *puller) stage(ctx context.Context, f *fetcher, c *protocol.Change) error {
	e := p.e
	if err := os.MkdirAll(e.stagingDir(), 0o700); err != nil {
		return fmt.Errorf("staging folder: %w", err)
	}
	e.stagingEmpty = false
	for _, r := range c.Data {
		dst := filepath.Join(e.stagingDir(), r.Hash)
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		data, err := f.blob(ctx, r, true)
		if errors.Is(err, storage.ErrNotFound) {
			continue // the file's change will ask for it again
		}
		if err != nil {
			return fmt.Errorf("part of %s: %w", c.Path, err)
		}
		if sum := blake3.Sum256(data); hex.EncodeToString(sum[:]) != r.Hash {
			return fmt.Errorf("part of %s: %w: chunk %s does not match its hash", c.Path, protocol.ErrInvalid, r.Obj)
		}
		tmp := dst + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			return fmt.Errorf("stage a chunk of %s: %w", c.Path, err)
		}
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("stage a chunk of %s: %w", c.Path, err)
		}
		f.bytes += r.Size
	}
	p.res.Waiting = append(p.res.Waiting, fmt.Sprintf("%s arrives in parts: %d more chunks kept aside", c.Path, len(c.Data)))
	return nil
}

// stagedChunk returns a staged chunk, verified, or nil.
func (e *Engine) stagedChunk(hash string) []byte {
	if len(hash) != 64 || e.stagingEmpty {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(e.stagingDir(), hash))
	if err != nil {
		return nil
	}
	if sum := blake3.Sum256(data); hex.EncodeToString(sum[:]) != hash {
		return nil
	}
	return data
}

// unstage drops the staged chunks a written file used, and stale ones.
func (e *Engine) unstage(refs []protocol.Ref) {
	if e.stagingEmpty {
		return
	}
	for _, r := range refs {
		if len(r.Hash) == 64 {
			_ = os.Remove(filepath.Join(e.stagingDir(), r.Hash))
		}
	}
	e.stagingEmpty = stagingIsEmpty(e.stagingDir())
}

// stagingIsEmpty: no chunk is staged, so a pull need not look for each of
// its chunks there (a lookup and two removals per chunk otherwise).
func stagingIsEmpty(dir string) bool {
	d, err := os.Open(dir)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	defer d.Close()
	_, err = d.Readdirnames(1)
	return err == io.EOF
}

// cleanStaging removes chunks staged long ago for a file that never came.
func (e *Engine) cleanStaging() {
	entries, err := os.ReadDir(e.stagingDir())
	if err != nil {
		e.stagingEmpty = errors.Is(err, fs.ErrNotExist)
		return
	}
	for _, en := range entries {
		if fi, err := en.Info(); err == nil && time.Since(fi.ModTime()) > stagingMaxAge {
			_ = os.Remove(filepath.Join(e.stagingDir(), en.Name()))
		}
	}
	e.stagingEmpty = stagingIsEmpty(e.stagingDir())
}

// deliveredChunks lists the chunks of path's content hash already sent as
// parts.
func (e *Engine) deliveredChunks(path, hash string) (map[string]bool, error) {
	out := map[string]bool{}
	err := e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketParts)
		if err != nil {
			return err
		}
		var d delivered
		ok, err := getJSON(b, []byte(path), &d)
		if err != nil || !ok || d.Hash != hash {
			return err
		}
		for _, h := range d.Chunks {
			out[h] = true
		}
		return nil
	})
	return out, err
}

// recordParts notes, in the publish transaction, the chunks p sent as
// parts, and forgets those of files now published whole.
func recordParts(tx *state.Tx, p *pusher) error {
	b, err := tx.Bucket(bucketParts)
	if err != nil {
		return err
	}
	for path := range p.states {
		if err := b.Delete([]byte(path)); err != nil {
			return err
		}
	}
	for path, d := range p.parts {
		var old delivered
		if _, err := getJSON(b, []byte(path), &old); err != nil {
			return err
		}
		if old.Hash == d.Hash {
			d.Chunks = append(old.Chunks, d.Chunks...)
		}
		if err := putJSON(b, []byte(path), d); err != nil {
			return err
		}
	}
	return nil
}
