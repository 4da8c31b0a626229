// Package scan walks a repository's local folder and reports what is there:
// every synced file with its content hash, every symlink, every directory.
// Deletions are the engine's business (it compares with the previous state);
// the scanner only says what exists, and which paths it could not judge this
// round (Stats.Errors, Stats.Unstable), under which the engine must not infer
// deletions.
//
// # Hash
//
// Content hashes are BLAKE3-256 (github.com/zeebo/blake3): several times
// faster than SHA-256 with SIMD, so a cold scan is bounded by the disk rather
// than the CPU; 256 bits, so collisions are not a concern for content
// addressing; and it has a keyed mode, which the protocol can use to derive
// relay-side object ids that reveal nothing to the relay. Files are streamed
// through a fixed buffer, never read whole.
//
// # Change detection
//
// The hash cache (state.HashCache) keeps, per path, the size, mtime, ctime,
// inode and hash seen last time. When all four still match, the hash is
// reused without reading the file. Otherwise the file is read, with a
// torn-read guard: the file is lstat'ed before and after, and opened and
// fstat'ed to check it is the same inode; if anything moved during the read,
// it is read again, up to Retries times, after which it is reported in
// Stats.Unstable and not emitted this round. A hash of a file that was
// changing is never emitted.
//
// A record whose ctime (mtime where there is no ctime) falls within
// RacyWindow of the moment it was taken is "racy", as in git: a later write
// within the file system's timestamp granularity could leave every stat field
// unchanged. Such a record is never trusted; the file is hashed again on the
// next scan, by which time its record is old enough to trust.
//
// # Order and cost
//
// Directories are walked one at a time, depth first, entries sorted by name
// (bytewise); a directory comes before its contents. That order is Less. Only
// the directories on the current path are held in memory, never the tree.
// Each directory's cache records are read in one read transaction; cache
// writes are batched. Files are hashed by Workers goroutines in parallel and
// emitted in walk order.
package scan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/escale-sync/escale/pkg/filter"
	"github.com/escale-sync/escale/pkg/state"
)

// Kind is what an Entry is.
type Kind uint8

const (
	File    Kind = iota + 1 // a regular file
	Dir                     // a directory
	Symlink                 // a symbolic link, never followed
)

func (k Kind) String() string {
	switch k {
	case File:
		return "file"
	case Dir:
		return "dir"
	case Symlink:
		return "symlink"
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Entry is one synced thing found in the folder.
type Entry struct {
	Path      string // slash-separated, relative to the root
	Kind      Kind
	Size      int64 // file: bytes; symlink: length of Target; dir: 0
	ModTimeNs int64
	Mode      os.FileMode
	Inode     uint64   // 0 where the OS has none
	Hash      [32]byte // file: BLAKE3-256 of the content; symlink: of Target
	Target    string   // symlink only, as stored in the link
	Empty     bool     // dir only: it has no synced entries
	// Racy: the file changed within RacyWindow before it was read. Its hash is
	// right for what was read, but it may still be being written.
	Racy bool
}

// Skip is a path that is neither synced nor an error (a socket, a device…).
type Skip struct {
	Path, Reason string
}

// PathError is a path the scan could not read; the scan went on without it.
type PathError struct {
	Path string
	Err  error
}

func (e PathError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e PathError) Unwrap() error { return e.Err }

// Stats summarises one scan.
type Stats struct {
	Files, Dirs, Symlinks int   // entries emitted
	Bytes                 int64 // total size of the emitted files
	Hashed                int   // files read (cache miss, racy, or retried)
	HashedBytes           int64
	CacheHits             int // files whose hash came from the cache
	Racy                  int // emitted files marked Racy
	Excluded              int // names left out by the filter or ignore files
	Pruned                int // stale cache records dropped
	// Paths the engine must not treat as deleted this round:
	Unstable []string    // kept changing while read; retried next round
	Errors   []PathError // could not be read (a directory: nothing below it was scanned)
	Skipped  []Skip      // not a file, directory or symlink
}

// Defaults for the zero values of Scanner's fields.
const (
	DefaultRacyWindow = 2 * time.Second // FAT and many network file systems store 1-2 s
	DefaultRetries    = 3
	maxIgnoreFileSize = 1 << 20
	cacheBatch        = 4096
	orderedQueue      = 4096
)

// Scanner scans one folder. Set the fields, then call Scan; a Scanner may be
// reused but not run concurrently with itself.
type Scanner struct {
	Root   string
	Filter *filter.Filter // nil: sync everything (but escale's temp files)
	Cache  *state.HashCache
	// Workers hashing in parallel; 0 means GOMAXPROCS.
	Workers int
	// RacyWindow is the file system timestamp granularity to assume; 0 means
	// DefaultRacyWindow.
	RacyWindow time.Duration
	// Retries of a read that saw the file change; 0 means DefaultRetries.
	Retries int
	// Known, if set, gives the records of files the caller itself just put
	// in place (KnownRecord: its stat of the file in place and the hash of
	// what it wrote and verified). A file whose lstat equals its record in
	// size, mtime, inode and change time is not read again: a sync that
	// pulled a gigabyte does not hash it once more to see it unchanged.
	// Platforms without an inode change time always read. The cache record
	// written for such a file is the one a read would have written, so the
	// racy rule still applies to the next scan.
	Known func(path string) (state.FileRecord, bool)
}

// KnownRecord is the record of a file the caller put in place, for Known:
// fi is its Lstat taken once in place, hash the hash of what was written.
func KnownRecord(fi os.FileInfo, hash [32]byte) state.FileRecord {
	st := statOf(fi)
	return state.FileRecord{Size: st.size, ModTimeNs: st.mtimeNs, ChangeTimeNs: st.ctimeNs, Inode: st.ino, Mode: uint32(st.mode), Hash: hash}
}

// Scan walks the folder and calls emit for each synced entry in walk order
// (see Less), from the calling goroutine. It stops at the first error emit
// returns, and returns it. Unreadable paths do not stop the scan: they are in
// Stats.Errors. A complete scan also drops cache records of paths it did not
// see (deleted, or no longer synced).
func (s *Scanner) Scan(ctx context.Context, emit func(Entry) error) (Stats, error) {
	var st Stats
	root, err := os.OpenRoot(s.Root)
	if err != nil {
		return st, fmt.Errorf("scan %s: %w; check that the repository's path exists and is readable", s.Root, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	workers := s.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ordered := make(chan *job, orderedQueue)
	work := make(chan *job, workers*4)
	free := make(chan *job, orderedQueue)
	w := &walker{
		s: s, ctx: ctx, ordered: ordered, work: work, free: free,
		window:  s.racyWindow().Nanoseconds(),
		visited: make(map[string]struct{}),
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := newHasher(s)
			for j := range work {
				h.run(ctx, j)
			}
		}()
	}
	walkDone := make(chan error, 1)
	go func() { walkDone <- w.walk(root) }()

	c := consumer{s: s, st: &st, emit: emit}
	for j := range ordered {
		if j.done != nil {
			<-j.done
		}
		if c.err == nil && ctx.Err() == nil {
			c.handle(j)
			if c.err != nil {
				cancel()
			}
		}
		// Done with it (its worker too, once done is closed): the walker
		// may reuse it.
		select {
		case free <- j:
		default:
		}
	}
	walkErr := <-walkDone
	wg.Wait()
	st.Excluded += w.excluded

	if c.err == nil {
		c.flush()
	}
	switch {
	case c.err != nil:
		return st, c.err
	case walkErr != nil:
		return st, walkErr
	case ctx.Err() != nil:
		return st, ctx.Err()
	}
	if s.Cache != nil {
		n, err := s.Cache.PruneDirs(func(dir string) bool { _, ok := w.visited[dir]; return ok })
		st.Pruned += n
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

// Vouches reports whether the cache's record of path vouches for hash while
// the file's stat is fi, by the rule a scan uses to take a record without
// reading the file: the record has that hash, its size, mtime, change time
// and inode equal fi's, and it was not racy when taken. A caller that reads
// the file for another purpose (the push, to chunk it) can then skip hashing
// it once more to see it unchanged since the scan, provided it checks the
// same way that nothing moved while it read. Platforms without an inode
// change time never vouch.
func (s *Scanner) Vouches(path string, fi os.FileInfo, hash [32]byte) bool {
	if s.Cache == nil || fi == nil {
		return false
	}
	st := statOf(fi)
	if st.ctimeNs == 0 || !st.mode.IsRegular() {
		return false
	}
	r, ok, err := s.Cache.Get(path)
	if err != nil || !ok || r.Hash != hash {
		return false
	}
	return trusted(&r, st, s.racyWindow().Nanoseconds())
}

func (s *Scanner) racyWindow() time.Duration {
	if s.RacyWindow > 0 {
		return s.RacyWindow
	}
	return DefaultRacyWindow
}

func (s *Scanner) retries() int {
	if s.Retries > 0 {
		return s.Retries
	}
	return DefaultRetries
}

// consumer turns finished jobs into emitted entries, stats and cache writes,
// in walk order, on Scan's goroutine.
type consumer struct {
	s       *Scanner
	st      *Stats
	emit    func(Entry) error
	puts    []state.KV
	deletes []string
	err     error
}

func (c *consumer) handle(j *job) {
	st := c.st
	c.deletes = append(c.deletes, j.deletes...)
	st.Pruned += len(j.deletes)
	switch j.outcome {
	case outNone:
	case outSkip:
		st.Skipped = append(st.Skipped, Skip{Path: j.entry.Path, Reason: j.reason})
	case outError:
		st.Errors = append(st.Errors, PathError{Path: j.entry.Path, Err: j.err})
	case outUnstable:
		st.Unstable = append(st.Unstable, j.entry.Path)
	case outEmit:
		switch j.entry.Kind {
		case File:
			st.Files++
			st.Bytes += j.entry.Size
			if j.entry.Racy {
				st.Racy++
			}
		case Dir:
			st.Dirs++
		case Symlink:
			st.Symlinks++
		}
		if err := c.emit(j.entry); err != nil {
			c.err = err
			return
		}
	}
	if j.hashed > 0 {
		st.Hashed += j.hashed
		st.HashedBytes += j.hashedBytes
	} else if j.outcome == outEmit && j.entry.Kind == File {
		st.CacheHits++
	}
	if j.record != nil {
		c.puts = append(c.puts, state.KV{Path: j.entry.Path, Record: *j.record})
	}
	if len(c.puts)+len(c.deletes) >= cacheBatch {
		c.flush()
	}
}

func (c *consumer) flush() {
	if c.s.Cache == nil || c.err != nil {
		return
	}
	if err := c.s.Cache.Write(c.puts, c.deletes); err != nil {
		c.err = fmt.Errorf("scan %s: %w", c.s.Root, err)
	}
	c.puts, c.deletes = c.puts[:0], c.deletes[:0]
}

// errChanged means the file moved under the reader; try again.
var errChanged = errors.New("file changed while being read")
