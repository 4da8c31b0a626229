package relayops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/storage"
)

// AdminLock is the lock admin operations take (docs/PROTOCOL.md §11).
const AdminLock = "admin"

// MigrateOptions tune Migrate.
type MigrateOptions struct {
	// Lock is how the admin lock is taken on the source.
	Lock     protocol.LockOptions
	Progress Progress
	// MaxPasses bounds the copy passes while the source keeps changing
	// (clients still syncing); 0 means 3.
	MaxPasses int
}

// Migrate copies every object of the repository's relay to dst under the
// source's admin lock: dst must be empty; escale.json goes last, once a
// listing of both sides agrees on every name and size (and hash, where
// both backends report the same kind). Objects written to the source
// meanwhile are copied by another pass; objects deleted there are deleted
// from dst. The source is left as it was.
func Migrate(ctx context.Context, src *protocol.Repo, dst *storage.Relay, o MigrateOptions) (st Stats, err error) {
	prog := orNone(o.Progress)
	if o.MaxPasses <= 0 {
		o.MaxPasses = 3
	}
	var first string
	err = dst.Walk(ctx, "", func(e storage.Entry) error {
		first = e.Name
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return Stats{}, fmt.Errorf("list %s: %w", dst, err)
	}
	if first != "" {
		return Stats{}, fmt.Errorf("%w: %s holds objects (%s, ...); give an empty folder", ErrNotEmpty, dst, first)
	}
	lock, err := src.AcquireLock(ctx, AdminLock, o.Lock)
	if err != nil {
		return Stats{}, fmt.Errorf("take the admin lock on %s: %w", src.Relay, err)
	}
	defer func() {
		if rerr := lock.Release(context.WithoutCancel(ctx)); rerr != nil && err == nil {
			err = rerr
		}
	}()
	marker, m, err := readMarker(ctx, src.Relay)
	if err != nil {
		return Stats{}, err
	}
	st.Repository = m.Repository

	for {
		srcObjs, err := listObjects(ctx, src.Relay)
		if err != nil {
			return st, err
		}
		dstObjs, err := listObjects(ctx, dst)
		if err != nil {
			return st, err
		}
		todo, extra, hashed := diff(srcObjs, dstObjs)
		if len(todo) == 0 && len(extra) == 0 {
			st.Hashed = hashed
			break
		}
		if st.Passes == o.MaxPasses {
			return st, fmt.Errorf("the source relay kept changing during %d copy passes (%d objects still differ): stop `escale sync` on every client and run migrate again", st.Passes, len(todo)+len(extra))
		}
		st.Passes++
		var total int64
		for _, e := range todo {
			total += max(e.Size, 0)
		}
		prog.Start(fmt.Sprintf("migrate (pass %d)", st.Passes), total)
		for _, e := range todo {
			select {
			case <-lock.Lost():
				prog.Finish()
				return st, fmt.Errorf("the admin lock on %s was lost (broken by another client): migration stopped; run it again", src.Relay)
			default:
			}
			n, err := copyObject(ctx, src.Relay, dst, e, prog)
			if err != nil {
				prog.Finish()
				return st, err
			}
			st.Objects++
			st.Bytes += n
		}
		prog.Finish()
		for _, e := range extra {
			if err := dst.Delete(ctx, e.Name); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return st, fmt.Errorf("delete %s from %s (it left the source meanwhile): %w", e.Name, dst, err)
			}
			st.Deleted++
		}
	}
	if _, err := dst.Put(ctx, protocol.MarkerName, bytes.NewReader(marker), int64(len(marker))); err != nil {
		return st, fmt.Errorf("write %s to %s (every other object is copied): %w", protocol.MarkerName, dst, err)
	}
	back, _, err := readMarker(ctx, dst)
	if err != nil || !bytes.Equal(back, marker) {
		return st, fmt.Errorf("%s on %s does not read back as written (%v): the destination is not usable", protocol.MarkerName, dst, err)
	}
	st.Objects++
	st.Bytes += int64(len(marker))
	return st, nil
}

var errStop = errors.New("stop")

// diff says what dst lacks or has different from src (todo), what dst has
// that src does not (extra), and how many matching objects were compared by
// hash as well as size.
func diff(src, dst []storage.Entry) (todo, extra []storage.Entry, hashed int) {
	have := make(map[string]storage.Entry, len(dst))
	for _, e := range dst {
		have[e.Name] = e
	}
	for _, e := range src {
		d, ok := have[e.Name]
		delete(have, e.Name)
		if !ok || e.Size < 0 || d.Size != e.Size {
			todo = append(todo, e)
			continue
		}
		same, compared := sameHash(e, d)
		if !same {
			todo = append(todo, e)
			continue
		}
		if compared {
			hashed++
		}
	}
	for _, e := range dst {
		if _, ok := have[e.Name]; ok {
			extra = append(extra, e)
		}
	}
	return todo, extra, hashed
}

// sameHash compares the hashes both listings carry.
func sameHash(a, b storage.Entry) (same, compared bool) {
	for kind, av := range a.Hashes {
		if bv := b.Hashes[kind]; av != "" && bv != "" {
			if av != bv {
				return false, true
			}
			compared = true
		}
	}
	return true, compared
}

// copyObject copies one object and returns its size.
func copyObject(ctx context.Context, from, to *storage.Relay, e storage.Entry, prog Progress) (int64, error) {
	rc, size, err := openSized(ctx, from, e)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil // deleted meanwhile; the next listing sees it gone
	}
	if err != nil {
		return 0, fmt.Errorf("copy %s: %w", e.Name, err)
	}
	defer rc.Close()
	// A seekable body (read first) is given as is, so the upload can be retried.
	var body io.Reader = rc
	_, seekable := rc.(io.Seeker)
	if !seekable {
		body = progressReader{rc, prog}
	}
	if _, err := to.Put(ctx, e.Name, body, size); err != nil {
		return 0, fmt.Errorf("copy %s to %s: %w", e.Name, to, err)
	}
	if seekable {
		prog.Add(size)
	}
	return size, nil
}
