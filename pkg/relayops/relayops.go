// Package relayops holds the operations on a whole relay that the admin
// commands run: backup to and restore from an archive, and migration to
// another relay. They copy raw relay objects, so backup and restore work
// without the repository key; migrate needs it only for the admin lock.
package relayops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/storage"
)

// Progress receives byte counts as an operation copies. The CLI draws a bar
// with it; nil means no progress reporting.
type Progress interface {
	// Start begins a phase of total bytes (-1 when unknown).
	Start(what string, total int64)
	// Add counts n more bytes done.
	Add(n int64)
	// Finish ends the phase.
	Finish()
}

type noProgress struct{}

func (noProgress) Start(string, int64) {}
func (noProgress) Add(int64)           {}
func (noProgress) Finish()             {}

func orNone(p Progress) Progress {
	if p == nil {
		return noProgress{}
	}
	return p
}

// progressWriter counts what passes through into a Progress.
type progressReader struct {
	r io.Reader
	p Progress
}

func (x progressReader) Read(b []byte) (int, error) {
	n, err := x.r.Read(b)
	x.p.Add(int64(n))
	return n, err
}

// Stats says what an operation copied.
type Stats struct {
	Repository string // the repository id
	Objects    int    // objects copied, escale.json included
	Bytes      int64  // their total size
	Vanished   int    // objects deleted on the relay while the operation ran (backup)
	Deleted    int    // objects removed from the destination (restore --force, migrate)
	Hashed     int    // objects whose hash was compared too (migrate)
	Passes     int    // copy passes (migrate: more than one when the source changed meanwhile)
}

// smallObject is the size up to which an object is read whole before it is
// written: such uploads can be retried (a stream cannot be replayed), and
// rewritten-in-place objects (acks, info, wants) are copied consistently.
// Bigger objects are write-once by the protocol, and streamed.
const smallObject = 1 << 20

// skipped says whether a relay object is left out of copies: lock entries
// are transient state of the relay they were taken on.
func skipped(name string) bool {
	return name == protocol.MarkerName || strings.HasPrefix(name, protocol.LocksDir+"/")
}

// listObjects walks relay and returns its objects sorted by name, without
// escale.json and locks/.
func listObjects(ctx context.Context, relay *storage.Relay) ([]storage.Entry, error) {
	var out []storage.Entry
	err := relay.Walk(ctx, "", func(e storage.Entry) error {
		if !skipped(e.Name) {
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", relay, err)
	}
	slices.SortFunc(out, func(a, b storage.Entry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// readMarker reads the raw bytes of escale.json and parses them.
func readMarker(ctx context.Context, relay *storage.Relay) ([]byte, *protocol.Marker, error) {
	m, err := protocol.ReadMarker(ctx, relay)
	if err != nil {
		return nil, nil, err
	}
	rc, err := relay.Open(ctx, protocol.MarkerName, 0, -1)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", protocol.MarkerName, err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", protocol.MarkerName, err)
	}
	return raw, m, nil
}

// openSized opens a relay object for copying and returns its exact size:
// small objects and objects of unknown size are read first (into memory,
// or a temporary file when big), so the size given to the writer is the
// size of the bytes it gets, even if the object is rewritten meanwhile.
// The returned reader is seekable when the object was read first.
func openSized(ctx context.Context, relay *storage.Relay, e storage.Entry) (io.ReadCloser, int64, error) {
	rc, err := relay.Open(ctx, e.Name, 0, -1)
	if err != nil {
		return nil, 0, err
	}
	switch {
	case e.Size >= 0 && e.Size <= smallObject:
		defer rc.Close()
		data, err := io.ReadAll(io.LimitReader(rc, 4*smallObject))
		if err != nil {
			return nil, 0, fmt.Errorf("read %s: %w", e.Name, err)
		}
		return bytesBody{bytes.NewReader(data)}, int64(len(data)), nil
	case e.Size < 0:
		defer rc.Close()
		f, err := os.CreateTemp("", "escale-object-*")
		if err != nil {
			return nil, 0, err
		}
		os.Remove(f.Name()) // unlinked: gone when closed
		n, err := io.Copy(f, rc)
		if err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("read %s: %w", e.Name, err)
		}
		return f, n, nil
	}
	return &exactReader{rc: rc, name: e.Name, left: e.Size}, e.Size, nil
}

// exactReader fails when a streamed object is not the size its listing
// gave: a write-once object that changed means something else is wrong.
type exactReader struct {
	rc   io.ReadCloser
	name string
	left int64
}

var errChanged = errors.New("changed while it was being copied")

func (x *exactReader) Read(p []byte) (int, error) {
	if x.left == 0 {
		var one [1]byte
		if n, _ := io.ReadFull(x.rc, one[:]); n > 0 {
			return 0, fmt.Errorf("%s %w (it is longer than listed); run the operation again", x.name, errChanged)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > x.left {
		p = p[:x.left]
	}
	n, err := x.rc.Read(p)
	x.left -= int64(n)
	if err == io.EOF && x.left > 0 {
		return n, fmt.Errorf("%s %w (it is shorter than listed); run the operation again", x.name, errChanged)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func (x *exactReader) Close() error { return x.rc.Close() }

// validName checks a relay object name read from an archive: relative,
// clean, slash-separated.
func validName(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || path.Clean(name) != name {
		return false
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for _, c := range seg {
			if c < 0x20 || c == 0x7f {
				return false
			}
		}
	}
	return true
}

// bytesBody is an object read whole: seekable, so uploads can retry.
type bytesBody struct{ *bytes.Reader }

func (bytesBody) Close() error { return nil }
