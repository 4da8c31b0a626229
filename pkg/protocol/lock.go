package protocol

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/storage"
)

// Lock defaults (docs/PROTOCOL.md §11).
const (
	DefaultLockTimeout = 10 * time.Minute
	DefaultLockSettle  = 2 * time.Second
	maxLockObj         = 64 << 10
)

// ErrLocked means another client holds (or is taking) the lock. The error
// that wraps it names the holder and since when.
var ErrLocked = errors.New("the relay lock is held by another client")

// LockOptions tune AcquireLock.
type LockOptions struct {
	Owner   string        // client name, shown to waiters (sealed: the relay does not learn it)
	Timeout time.Duration // lock_timeout: a lock whose heartbeat is older is stale and broken; 0: DefaultLockTimeout
	Wait    time.Duration // how long Acquire waits for a held lock before ErrLocked (0: don't wait)
	// Settle is how long a new lock entry may take to show in a listing
	// (the backend's listing lag); 0: DefaultLockSettle. Unused where the
	// backend has a native conditional create.
	Settle time.Duration
}

// lockRecord is the sealed content of a lock entry.
type lockRecord struct {
	V         int       `json:"v"`
	Owner     string    `json:"owner"`
	ID        string    `json:"id"`     // random, 16 hex digits
	Ticket    uint64    `json:"ticket"` // 0 while choosing (listing-based locks only)
	Created   time.Time `json:"created"`
	Heartbeat time.Time `json:"heartbeat"`
}

// Lock is a held relay lock. A heartbeat goroutine keeps it alive until
// Release.
type Lock struct {
	repo    *Repo
	name    string // lock name, e.g. "admin"
	object  string // relay name of our entry
	timeout time.Duration

	mu  sync.Mutex
	rec lockRecord

	lost     chan struct{}
	lostOnce sync.Once
	stop     context.CancelFunc
	done     chan struct{}
	release  sync.Once
	relErr   error
}

// lockEntry is another client's entry as seen in a listing.
type lockEntry struct {
	object string
	rec    lockRecord
	err    error     // the entry could not be read or opened
	mtime  time.Time // storage mtime, for unreadable entries
}

// LockObjectName is the relay name of lock name where the backend has a
// native conditional create.
func LockObjectName(name string) string { return LocksDir + "/" + name + ".lock" }

func validLockName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// AcquireLock takes the relay lock name (docs/PROTOCOL.md §11): with a
// conditional create where the backend has one (S3), else with a ticket
// algorithm over listings that does not depend on clocks agreeing. It waits
// up to o.Wait for a holder, then fails with an error wrapping ErrLocked
// that names the holder. Stale entries (heartbeat older than o.Timeout) are
// deleted with a warning.
func (r *Repo) AcquireLock(ctx context.Context, name string, o LockOptions) (*Lock, error) {
	if !validLockName(name) {
		return nil, fmt.Errorf("invalid lock name %q: use lowercase letters, digits and '-'", name)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultLockTimeout
	}
	if o.Settle <= 0 {
		o.Settle = DefaultLockSettle
	}
	var idb [8]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	l := &Lock{
		repo: r, name: name, timeout: o.Timeout,
		rec:  lockRecord{V: 1, Owner: o.Owner, ID: hex.EncodeToString(idb[:]), Created: now, Heartbeat: now},
		lost: make(chan struct{}), done: make(chan struct{}),
	}
	deadline := time.Now().Add(o.Wait)
	var err error
	if r.Relay.Features().ConditionalCreate {
		err = l.acquireConditional(ctx, deadline, o)
	} else {
		err = l.acquireListed(ctx, deadline, o)
	}
	if err != nil {
		return nil, err
	}
	hctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	l.stop = stop
	go l.heartbeat(hctx)
	return l, nil
}

// acquireConditional creates locks/<name>.lock if absent; the server
// decides who wins.
func (l *Lock) acquireConditional(ctx context.Context, deadline time.Time, o LockOptions) error {
	l.object = LockObjectName(l.name)
	for {
		sealed, err := l.seal()
		if err != nil {
			return err
		}
		_, err = l.repo.Relay.PutIfAbsent(ctx, l.object, bytes.NewReader(sealed), int64(len(sealed)))
		if err == nil {
			return nil
		}
		if !errors.Is(err, storage.ErrExists) {
			return fmt.Errorf("take lock %q: %w", l.name, err)
		}
		e := l.readEntry(ctx, l.object)
		switch {
		case errors.Is(e.err, storage.ErrNotFound):
			continue // released meanwhile
		case e.err == nil && e.rec.ID == l.rec.ID:
			return nil // our own upload, whose reply was lost and retried
		case l.stale(e):
			if err := l.breakStale(ctx, e); err != nil {
				return err
			}
			continue
		}
		if !time.Now().Before(deadline) {
			return l.lockedError(e)
		}
		if err := sleepCtx(ctx, pollInterval(o)); err != nil {
			return err
		}
	}
}

// acquireListed is Lamport's bakery over listings: announce an entry
// (ticket 0: choosing), take a ticket above every ticket seen, then wait
// until no entry is choosing or holds a lower (ticket, id). Every list
// starts a settle delay after our last write, so each client's write is
// visible to its own next read: mutual exclusion holds whatever the clocks
// say; clocks only decide staleness.
func (l *Lock) acquireListed(ctx context.Context, deadline time.Time, o LockOptions) (err error) {
	l.object = LocksDir + "/" + l.name + "." + l.rec.ID + ".lock"
	defer func() {
		if err != nil {
			// Leave no entry behind: it would block others until it expires.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if derr := l.repo.Relay.Delete(dctx, l.object); derr != nil && !errors.Is(derr, storage.ErrNotFound) {
				slog.Warn("could not delete the lock entry of an abandoned attempt; it expires after lock_timeout", "lock", l.name, "object", l.object, "err", derr)
			}
		}
	}()
	if o.Wait <= 0 {
		// Not waiting: a lock visibly held is refused at once, without
		// announcing an entry (and waiting twice the settle delay).
		others, err := l.listOthers(ctx)
		if err != nil {
			return err
		}
		var holder *lockEntry
		for i, e := range others {
			if e.err == nil && e.rec.Ticket != 0 && (holder == nil || ticketLess(e.rec, holder.rec)) {
				holder = &others[i]
			}
		}
		if holder != nil {
			return l.lockedError(*holder)
		}
	}
	if err := l.write(ctx); err != nil {
		return fmt.Errorf("take lock %q: %w", l.name, err)
	}
	if err := sleepCtx(ctx, o.Settle); err != nil {
		return err
	}
	others, err := l.listOthers(ctx)
	if err != nil {
		return err
	}
	var maxTicket uint64
	for _, e := range others {
		maxTicket = max(maxTicket, e.rec.Ticket)
	}
	l.mu.Lock()
	l.rec.Ticket = maxTicket + 1
	l.mu.Unlock()
	if err := l.write(ctx); err != nil {
		return fmt.Errorf("take lock %q: %w", l.name, err)
	}
	lastBeat := time.Now()
	if err := sleepCtx(ctx, o.Settle); err != nil {
		return err
	}
	for {
		others, err := l.listOthers(ctx)
		if err != nil {
			return err
		}
		blocker := l.blocker(others)
		if blocker == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return l.lockedError(*blocker)
		}
		if err := sleepCtx(ctx, pollInterval(o)); err != nil {
			return err
		}
		if time.Since(lastBeat) >= l.timeout/3 {
			// Waiting longer than a heartbeat: keep our entry from going stale.
			l.mu.Lock()
			l.rec.Heartbeat = time.Now().UTC()
			l.mu.Unlock()
			if err := l.write(ctx); err != nil {
				return fmt.Errorf("refresh lock %q: %w", l.name, err)
			}
			lastBeat = time.Now()
		}
	}
}

// blocker is the entry we must wait for, nil when we hold the lock.
func (l *Lock) blocker(others []lockEntry) *lockEntry {
	var best *lockEntry
	for i := range others {
		e := &others[i]
		if e.err != nil || e.rec.Ticket == 0 || ticketLess(e.rec, l.rec) {
			// Unreadable and choosing entries block too: they may be about to
			// take a lower ticket. Report the lowest ticket as the holder.
			if best == nil || best.rec.Ticket == 0 || (e.rec.Ticket != 0 && ticketLess(e.rec, best.rec)) {
				best = e
			}
		}
	}
	return best
}

func ticketLess(a, b lockRecord) bool {
	if a.Ticket != b.Ticket {
		return a.Ticket < b.Ticket
	}
	return a.ID < b.ID
}

// listOthers lists the other live entries of this lock, deleting stale ones.
func (l *Lock) listOthers(ctx context.Context) ([]lockEntry, error) {
	entries, err := l.repo.Relay.List(ctx, LocksDir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", LocksDir, err)
	}
	var out []lockEntry
	for _, de := range entries {
		if de.IsDir || de.Name == l.object {
			continue
		}
		base := path.Base(de.Name)
		id, ok := strings.CutPrefix(base, l.name+".")
		if !ok {
			continue
		}
		id, ok = strings.CutSuffix(id, ".lock")
		if !ok || len(id) != 16 || strings.Contains(id, ".") {
			continue
		}
		e := l.readEntry(ctx, de.Name)
		if errors.Is(e.err, storage.ErrNotFound) {
			continue // released between the list and the read
		}
		if e.err != nil && e.mtime.IsZero() {
			e.mtime = de.ModTime
		}
		if l.stale(e) {
			if err := l.breakStale(ctx, e); err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

func (l *Lock) readEntry(ctx context.Context, object string) lockEntry {
	e := lockEntry{object: object}
	// A read that crosses the holder's heartbeat rewrite can come out torn:
	// only an entry that stays unreadable is judged by its storage mtime.
	for try := 0; try < 4; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				e.err = ctx.Err()
				return e
			case <-time.After(time.Duration(try) * 100 * time.Millisecond):
			}
		}
		e.rec = lockRecord{}
		e.err = l.repo.GetJSON(ctx, envelope.KindLock, object, maxLockObj, &e.rec)
		if e.err == nil || errors.Is(e.err, storage.ErrNotFound) {
			return e
		}
	}
	if e.err != nil && !errors.Is(e.err, storage.ErrNotFound) {
		if st, err := l.repo.Relay.Stat(ctx, object); err == nil {
			e.mtime = st.ModTime
		}
	}
	return e
}

// stale: the heartbeat (or, for an unreadable entry, the object's mtime)
// is older than the timeout.
func (l *Lock) stale(e lockEntry) bool {
	if errors.Is(e.err, storage.ErrNotFound) {
		return false
	}
	t := e.rec.Heartbeat
	if e.err != nil {
		t = e.mtime
	}
	return !t.IsZero() && time.Since(t) > l.timeout
}

func (l *Lock) breakStale(ctx context.Context, e lockEntry) error {
	slog.Warn("breaking a stale relay lock: its holder stopped its heartbeat (crashed, or cut off from the relay)",
		"lock", l.name, "object", e.object, "holder", describeHolder(e), "lock_timeout", l.timeout)
	if err := l.repo.Relay.Delete(ctx, e.object); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("delete stale lock %s: %w", e.object, err)
	}
	return nil
}

func describeHolder(e lockEntry) string {
	if e.err != nil {
		return fmt.Sprintf("unknown (%s unreadable: %v)", e.object, e.err)
	}
	owner := e.rec.Owner
	if owner == "" {
		owner = "an unnamed client"
	}
	return fmt.Sprintf("%s since %s (heartbeat %s ago)", owner,
		e.rec.Created.Local().Format(time.DateTime), time.Since(e.rec.Heartbeat).Round(time.Second))
}

func (l *Lock) lockedError(e lockEntry) error {
	if e.err == nil && e.rec.Ticket == 0 && !l.repo.Relay.Features().ConditionalCreate {
		return fmt.Errorf("lock %q: %w: %s is taking it; try again, or wait with a longer timeout", l.name, ErrLocked, describeHolder(e))
	}
	return fmt.Errorf("lock %q: %w: held by %s; wait for it to finish, or if that client is gone, the lock expires %s after its last heartbeat",
		l.name, ErrLocked, describeHolder(e), l.timeout)
}

func (l *Lock) seal() ([]byte, error) {
	l.mu.Lock()
	rec := l.rec
	l.mu.Unlock()
	plain, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return l.repo.sealer.SealBytes(envelope.KindLock, l.object, plain)
}

func (l *Lock) write(ctx context.Context) error {
	sealed, err := l.seal()
	if err != nil {
		return err
	}
	_, err = l.repo.Relay.Put(ctx, l.object, bytes.NewReader(sealed), int64(len(sealed)))
	return err
}

// heartbeat rewrites our entry every timeout/3. It gives up, and closes
// Lost, when the entry is gone or another's, or when it could not write for
// a whole timeout (waiters may have broken the lock by then).
func (l *Lock) heartbeat(ctx context.Context) {
	defer close(l.done)
	every := l.timeout / 3
	lastOK := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e := l.readEntry(ctx, l.object)
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(e.err, storage.ErrNotFound) || (e.err == nil && e.rec.ID != l.rec.ID):
			slog.Error("the relay lock was taken away (broken as stale by another client?); stop the operation", "lock", l.name, "object", l.object)
			l.markLost()
			return
		case e.err == nil:
			l.mu.Lock()
			l.rec.Heartbeat = time.Now().UTC()
			l.mu.Unlock()
			if err := l.write(ctx); err == nil {
				lastOK = time.Now()
				continue
			} else if ctx.Err() == nil {
				slog.Warn("relay lock heartbeat failed; retrying", "lock", l.name, "err", err)
			}
		default:
			slog.Warn("relay lock heartbeat could not read the lock; retrying", "lock", l.name, "err", e.err)
		}
		if time.Since(lastOK) > l.timeout {
			slog.Error("the relay lock's heartbeat failed for longer than lock_timeout: another client may have broken it; stop the operation", "lock", l.name)
			l.markLost()
			return
		}
	}
}

func (l *Lock) markLost() { l.lostOnce.Do(func() { close(l.lost) }) }

// Lost is closed if the heartbeat finds the lock taken away (or could not
// renew it for a whole lock_timeout): the operation it protects must stop.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Name is the lock's name.
func (l *Lock) Name() string { return l.name }

// Release stops the heartbeat and deletes the lock entry, unless the lock
// was lost to another client. Calling it again does nothing.
func (l *Lock) Release(ctx context.Context) error {
	l.release.Do(func() {
		l.stop()
		<-l.done
		select {
		case <-l.lost:
			return // not ours any more: never delete another client's lock
		default:
		}
		if l.repo.Relay.Features().ConditionalCreate {
			// One shared name: check it is still ours before deleting.
			if e := l.readEntry(ctx, l.object); e.err == nil && e.rec.ID != l.rec.ID {
				return
			}
		}
		if err := l.repo.Relay.Delete(ctx, l.object); err != nil && !errors.Is(err, storage.ErrNotFound) {
			l.relErr = fmt.Errorf("release lock %q: %w (it expires by itself after lock_timeout, %s)", l.name, err, l.timeout)
		}
	})
	return l.relErr
}

func pollInterval(o LockOptions) time.Duration {
	d := min(max(o.Settle, 50*time.Millisecond), 5*time.Second)
	// Jitter keeps waiters from polling in step.
	return d/2 + time.Duration(mrand.Int64N(int64(d)))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
