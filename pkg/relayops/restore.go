package relayops

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/storage"
)

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Force restores into a relay that already holds objects (of the same
	// repository, or no repository): objects that are not in the archive are
	// deleted, so the relay ends up exactly as backed up.
	Force    bool
	Progress Progress
}

// ErrNotEmpty means the destination relay already holds objects.
var ErrNotEmpty = errors.New("the destination relay is not empty")

// ErrForeignRepository means the destination relay holds another repository.
var ErrForeignRepository = errors.New("the destination relay holds another escale repository")

// ErrBadArchive means the archive is not a complete escale backup.
var ErrBadArchive = errors.New("not a complete escale relay backup")

// Restore puts the objects of a Backup archive into relay. It checks the
// archive's header and escale.json before it writes anything, refuses a
// relay that holds another repository (always) or any object (unless
// Force), and writes escale.json last, after the archive's trailer has
// confirmed it was read whole: a restore that fails half-way never leaves a
// relay that clients would take as valid. With Force, the relay's existing
// escale.json is deleted first for the same reason.
func Restore(ctx context.Context, relay *storage.Relay, r io.Reader, o RestoreOptions) (Stats, error) {
	prog := orNone(o.Progress)
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return Stats{}, err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s; nothing was made a valid relay (%s not written)", ErrBadArchive, fmt.Sprintf(format, args...), protocol.MarkerName)
	}

	var hdr archiveHeader
	if err := readJSONEntry(tr, headerName, &hdr); err != nil {
		return Stats{}, bad("%v", err)
	}
	if hdr.Format != archiveFormat {
		return Stats{}, bad("its header says format %q", hdr.Format)
	}
	if hdr.Version != 1 {
		return Stats{}, bad("backup format version %d is newer than this escale knows; upgrade escale", hdr.Version)
	}
	th, err := tr.Next()
	if err != nil || th.Name != protocol.MarkerName {
		return Stats{}, bad("%s is not where it belongs, right after the header", protocol.MarkerName)
	}
	marker, err := io.ReadAll(io.LimitReader(tr, 1<<20))
	if err != nil {
		return Stats{}, bad("read %s: %v", protocol.MarkerName, err)
	}
	m, err := protocol.ParseMarker(marker)
	if err != nil {
		return Stats{}, bad("its %s: %v", protocol.MarkerName, err)
	}
	if m.Repository != hdr.Repository {
		return Stats{}, bad("its %s names repository %s, its header %s", protocol.MarkerName, m.Repository, hdr.Repository)
	}

	// The destination: empty, or (with Force) this repository or none.
	existing := map[string]bool{}
	err = relay.Walk(ctx, "", func(e storage.Entry) error {
		existing[e.Name] = true
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("list %s: %w", relay, err)
	}
	hasMarker := false
	if existing[protocol.MarkerName] {
		cur, err := protocol.ReadMarker(ctx, relay)
		if err != nil {
			return Stats{}, fmt.Errorf("the destination's %s: %w; restore into an empty folder", protocol.MarkerName, err)
		}
		if cur.Repository != m.Repository {
			return Stats{}, fmt.Errorf("%w: %s holds repository %s, the archive is of repository %s; restore into an empty folder (a relay is never mixed with another repository)",
				ErrForeignRepository, relay, cur.Repository, m.Repository)
		}
		hasMarker = true
	}
	if len(existing) > 0 && !o.Force {
		return Stats{}, fmt.Errorf("%w: %s holds %d objects; restore into an empty folder, or add --force to replace its content with the archive's", ErrNotEmpty, relay, len(existing))
	}
	if hasMarker {
		// Until the restore completes, this is not a valid relay: clients
		// stop instead of reading a mix of old and new objects.
		if err := relay.Delete(ctx, protocol.MarkerName); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return Stats{}, fmt.Errorf("delete the old %s before replacing the relay's content: %w", protocol.MarkerName, err)
		}
	}

	st := Stats{Repository: m.Repository}
	prog.Start("restore", hdr.Bytes)
	defer prog.Finish()
	prog.Add(int64(len(marker)))
	restored := map[string]bool{protocol.MarkerName: true}
	var trailer *archiveTrailer
	for {
		th, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, bad("after %d objects: %v (the archive is truncated or damaged)", st.Objects, err)
		}
		if trailer != nil {
			return st, bad("an entry %q follows the trailer", th.Name)
		}
		if th.Name == trailerName {
			trailer = new(archiveTrailer)
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(trailer); err != nil {
				return st, bad("its trailer: %v", err)
			}
			continue
		}
		if th.Typeflag != tar.TypeReg || !validName(th.Name) || skipped(th.Name) || restored[th.Name] || th.Size < 0 {
			return st, bad("unexpected entry %q", th.Name)
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
		src := &recordingReader{r: progressReader{tr, prog}}
		var body io.Reader = src
		if th.Size <= smallObject {
			// Read whole first, so the upload can be retried.
			data, err := io.ReadAll(body)
			if err != nil {
				return st, bad("read %s: %v (the archive is truncated or damaged)", th.Name, err)
			}
			body = bytes.NewReader(data)
		}
		if _, err := relay.Put(ctx, th.Name, body, th.Size); err != nil {
			if src.err != nil {
				return st, bad("read %s: %v (the archive is truncated or damaged)", th.Name, src.err)
			}
			return st, fmt.Errorf("restore %s: %w; run the restore again with --force", th.Name, err)
		}
		restored[th.Name] = true
		st.Objects++
		st.Bytes += th.Size
	}
	if trailer == nil {
		return st, bad("its trailer is missing after %d objects (the archive is truncated)", st.Objects)
	}
	st.Objects++
	st.Bytes += int64(len(marker))
	if trailer.Objects != st.Objects || trailer.Bytes != st.Bytes {
		return st, bad("it holds %d objects (%d bytes) but its trailer says %d (%d bytes)", st.Objects, st.Bytes, trailer.Objects, trailer.Bytes)
	}
	if o.Force {
		for name := range existing {
			if restored[name] || name == protocol.MarkerName {
				continue
			}
			if err := relay.Delete(ctx, name); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return st, fmt.Errorf("delete %s, which is not in the archive: %w; run the restore again", name, err)
			}
			st.Deleted++
		}
	}
	if _, err := relay.Put(ctx, protocol.MarkerName, bytes.NewReader(marker), int64(len(marker))); err != nil {
		return st, fmt.Errorf("write %s (every other object is restored): %w; run the restore again with --force", protocol.MarkerName, err)
	}
	return st, nil
}

func readJSONEntry(tr *tar.Reader, name string, v any) error {
	th, err := tr.Next()
	if err != nil {
		return fmt.Errorf("cannot read it as a zstd-compressed tar: %v", err)
	}
	if th.Name != name {
		return fmt.Errorf("it starts with %q, not %s", th.Name, name)
	}
	if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(v); err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	return nil
}

// recordingReader remembers its source's failure, to tell a damaged
// archive from a failing relay.
type recordingReader struct {
	r   io.Reader
	err error
}

func (x *recordingReader) Read(p []byte) (int, error) {
	n, err := x.r.Read(p)
	if err != nil && err != io.EOF && x.err == nil {
		x.err = err
	}
	return n, err
}
