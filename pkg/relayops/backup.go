package relayops

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/storage"
)

// Archive layout: a zstd-compressed tar (PAX) of
//
//	escale-backup/header.json   what the backup is (format, repository, expected totals)
//	escale.json                 the relay's marker, first, so restore checks it before writing
//	keys/..., heads/..., clients/...   every other object, sorted, with size and mtime
//	escale-backup/trailer.json  the totals actually written: its absence means truncation
//
// locks/ is left out: lock entries belong to the relay they were taken on.
const (
	metaDir       = "escale-backup/"
	headerName    = metaDir + "header.json"
	trailerName   = metaDir + "trailer.json"
	archiveFormat = "escale-relay-backup"
)

type archiveHeader struct {
	Format     string    `json:"format"`
	Version    int       `json:"version"`
	Repository string    `json:"repository"`
	Created    time.Time `json:"created"`
	Source     string    `json:"source"` // the relay, secrets redacted
	Objects    int       `json:"objects"`
	Bytes      int64     `json:"bytes"`
}

type archiveTrailer struct {
	Objects int   `json:"objects"` // escale.json included
	Bytes   int64 `json:"bytes"`
}

// BackupOptions tune Backup.
type BackupOptions struct {
	Progress Progress
}

// Backup streams every object of relay (escale.json, keys/, heads/,
// clients/) into w as a zstd-compressed tar. It needs no key: objects are
// copied as stored. Taken while clients run, it is a crash-consistent
// snapshot: objects deleted meanwhile are left out and counted in
// Stats.Vanished.
func Backup(ctx context.Context, relay *storage.Relay, w io.Writer, o BackupOptions) (Stats, error) {
	prog := orNone(o.Progress)
	marker, m, err := readMarker(ctx, relay)
	if err != nil {
		return Stats{}, fmt.Errorf("nothing to back up in %s: %w", relay, err)
	}
	objs, err := listObjects(ctx, relay)
	if err != nil {
		return Stats{}, err
	}
	hdr := archiveHeader{Format: archiveFormat, Version: 1, Repository: m.Repository,
		Created: time.Now().UTC(), Source: relay.String(), Objects: len(objs) + 1, Bytes: int64(len(marker))}
	for _, e := range objs {
		if strings.HasPrefix(e.Name, metaDir) {
			return Stats{}, fmt.Errorf("the relay holds %s, which is not an escale object and would clash with the archive's own records; move it away and run the backup again", e.Name)
		}
		hdr.Bytes += max(e.Size, 0)
	}
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return Stats{}, err
	}
	tw := tar.NewWriter(zw)
	st := Stats{Repository: m.Repository}
	prog.Start("backup", hdr.Bytes)
	defer prog.Finish()

	if err := writeJSONEntry(tw, headerName, hdr); err != nil {
		return st, err
	}
	if err := writeEntry(tw, protocol.MarkerName, int64(len(marker)), m.Created, bytes.NewReader(marker)); err != nil {
		return st, err
	}
	st.Objects, st.Bytes = 1, int64(len(marker))
	prog.Add(st.Bytes)
	for _, e := range objs {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		rc, size, err := openSized(ctx, relay, e)
		if errors.Is(err, storage.ErrNotFound) {
			// Consumed and deleted by its pusher since the listing.
			st.Vanished++
			prog.Add(max(e.Size, 0))
			continue
		}
		if err != nil {
			return st, fmt.Errorf("back up %s: %w", e.Name, err)
		}
		err = writeEntry(tw, e.Name, size, e.ModTime, progressReader{rc, prog})
		rc.Close()
		if err != nil {
			return st, fmt.Errorf("back up %s: %w", e.Name, err)
		}
		st.Objects++
		st.Bytes += size
	}
	if err := writeJSONEntry(tw, trailerName, archiveTrailer{Objects: st.Objects, Bytes: st.Bytes}); err != nil {
		return st, err
	}
	if err := tw.Close(); err != nil {
		return st, fmt.Errorf("write archive: %w", err)
	}
	if err := zw.Close(); err != nil {
		return st, fmt.Errorf("write archive: %w", err)
	}
	if st.Objects+st.Vanished != len(objs)+1 {
		return st, fmt.Errorf("internal error: backed up %d objects and %d vanished, but the relay listed %d", st.Objects, st.Vanished, len(objs)+1)
	}
	return st, nil
}

func writeEntry(tw *tar.Writer, name string, size int64, mtime time.Time, r io.Reader) error {
	if mtime.IsZero() {
		mtime = time.Now()
	}
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: mtime, Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	n, err := io.Copy(tw, r)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%s: copied %d bytes of %d", name, n, size)
	}
	return nil
}

func writeJSONEntry(tw *tar.Writer, name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeEntry(tw, name, int64(len(data)), time.Now(), bytes.NewReader(data))
}

// ErrArchiveExists means the backup would overwrite an existing file.
var ErrArchiveExists = errors.New("the archive already exists")

// BackupFile writes the backup to the file archive: to archive.tmp first,
// synced, then linked into place, so a failed or interrupted backup never
// leaves a file that looks complete, and an existing archive is never
// overwritten.
func BackupFile(ctx context.Context, relay *storage.Relay, archive string, o BackupOptions) (Stats, error) {
	if _, err := os.Lstat(archive); err == nil {
		return Stats{}, fmt.Errorf("%s: %w; give a new file name, or delete it first", archive, ErrArchiveExists)
	}
	tmp := archive + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return Stats{}, fmt.Errorf("create the archive: %w", err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	st, err := Backup(ctx, relay, f, o)
	if err != nil {
		return st, err
	}
	if err := f.Sync(); err != nil {
		return st, fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return st, fmt.Errorf("write %s: %w", tmp, err)
	}
	done = true
	if err := publish(tmp, archive); err != nil {
		if !errors.Is(err, ErrArchiveExists) {
			os.Remove(tmp)
		}
		return st, err
	}
	if d, err := os.Open(filepath.Dir(archive)); err == nil {
		d.Sync() // make the new name durable; best effort (not every OS syncs directories)
		d.Close()
	}
	return st, nil
}

// publish moves tmp to final without replacing an existing final: a hard
// link fails if the name is taken. File systems without hard links (FAT)
// fall back to a check then rename.
func publish(tmp, final string) error {
	err := os.Link(tmp, final)
	if err == nil {
		return os.Remove(tmp)
	}
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s: %w (created while the backup ran); the backup is in %s", final, ErrArchiveExists, tmp)
	}
	if _, serr := os.Lstat(final); serr == nil {
		return fmt.Errorf("%s: %w (created while the backup ran); the backup is in %s", final, ErrArchiveExists, tmp)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("move the archive into place: %w", err)
	}
	return nil
}
