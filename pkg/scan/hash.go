package scan

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/zeebo/blake3"

	"github.com/escale-sync/escale/pkg/state"
)

// readBuffer is large enough for blake3's SIMD paths to work on many chunks
// per call, small enough that Workers of them cost nothing.
const readBuffer = 256 << 10

// hasher is one worker's reusable state.
type hasher struct {
	s       *Scanner
	h       *blake3.Hasher
	buf     []byte
	window  int64
	retries int
}

func newHasher(s *Scanner) *hasher {
	return &hasher{
		s: s, h: blake3.New(), buf: make([]byte, readBuffer),
		window: s.racyWindow().Nanoseconds(), retries: s.retries(),
	}
}

// tearWindow: a file changed this shortly before its read is read twice.
// Timestamps move by clock ticks (milliseconds on local file systems), so a
// write in the same tick as the previous one can go unseen by stat.
const tearWindow = int64(100 * time.Millisecond)

// run reads j's file until it gets a read during which nothing changed, and
// fills j's outcome, hash and cache record.
func (h *hasher) run(ctx context.Context, j *job) {
	defer close(j.done)
	defer j.dir.release()
	before, t0 := j.before, j.t0
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			j.outcome, j.err = outError, err
			return
		}
		sum, n, err := h.hashOnce(ctx, j.dir.root, j.name, before)
		j.hashed++
		j.hashedBytes += n
		if err != nil && !errors.Is(err, errChanged) {
			if errors.Is(err, fs.ErrNotExist) {
				j.outcome = outVanished
			} else {
				j.outcome, j.err = outError, err
			}
			return
		}
		t1 := time.Now().UnixNano()
		fi, lerr := j.dir.root.Lstat(j.name)
		if lerr != nil {
			if errors.Is(lerr, fs.ErrNotExist) {
				j.outcome = outVanished
			} else {
				j.outcome, j.err = outError, lerr
			}
			return
		}
		after := statOf(fi)
		if err == nil && after.unchanged(before) && racy(before.ctimeNs, before.mtimeNs, t0, tearWindow) {
			// Written just before the read: a write during the read may have
			// left the timestamps as they were (one clock tick), so the hash
			// counts only if a second read agrees.
			again, _, err2 := h.hashOnce(ctx, j.dir.root, j.name, before)
			if fi2, lerr := j.dir.root.Lstat(j.name); err2 != nil || again != sum || lerr != nil || !statOf(fi2).unchanged(before) {
				err = errChanged
			}
		}
		if err == nil && after.unchanged(before) {
			j.entry.Hash = sum
			j.entry.Racy = racy(before.ctimeNs, before.mtimeNs, t0, h.window)
			j.outcome = outEmit
			j.record = &state.FileRecord{
				Size: before.size, ModTimeNs: before.mtimeNs, ChangeTimeNs: before.ctimeNs,
				Inode: before.ino, Mode: uint32(before.mode), Hash: sum, CheckedAt: t0,
			}
			return
		}
		if attempt >= h.retries || !after.mode.IsRegular() {
			j.outcome = outUnstable
			return
		}
		// Retry against the new state; the entry reports what was hashed.
		before, t0 = after, t1
		j.entry.Size, j.entry.ModTimeNs, j.entry.Mode, j.entry.Inode = after.size, after.mtimeNs, after.mode, after.ino
	}
}

// hashOnce hashes the file if it is still the one described by before, and
// returns errChanged if it is not, or if its length differs from before.size.
func (h *hasher) hashOnce(ctx context.Context, root *os.Root, name string, before fileStat) (sum [32]byte, n int64, err error) {
	f, err := root.OpenFile(name, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return sum, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return sum, 0, err
	}
	// Same inode as the lstat (not a replacement, not a symlink's target),
	// and unchanged since.
	if !statOf(fi).unchanged(before) {
		return sum, 0, errChanged
	}
	h.h.Reset()
	for reads := 0; ; reads++ {
		if reads%256 == 0 { // about every 64 MiB
			if err := ctx.Err(); err != nil {
				return sum, n, err
			}
		}
		m, rerr := f.Read(h.buf)
		if m > 0 {
			n += int64(m)
			if n > before.size {
				return sum, n, errChanged
			}
			h.h.Write(h.buf[:m])
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return sum, n, rerr
		}
	}
	if n != before.size {
		return sum, n, errChanged
	}
	h.h.Sum(sum[:0])
	return sum, n, nil
}
