package watch

import (
	"slices"
	"sync"
	"time"
)

type opKind uint8

const (
	opCreated opKind = iota // a path appeared: if a directory, watch it and report its contents
	opGone                  // a path vanished or moved away: drop the watches at and below it
)

// op is work for the walker, kept in event order.
type op struct {
	kind opKind
	rel  string
}

// pending gathers what the next Batch will hold and the walker's work queue.
// Both are capped: past the cap the Batch is marked Overflow and the queue is
// replaced by one full re-walk, so memory stays bounded whatever the burst.
type pending struct {
	mu       sync.Mutex
	maxPaths int

	paths       map[string]struct{}
	overflow    bool
	first, last time.Time // of the current burst; zero when nothing is pending

	queue     []op
	busy      bool // the walker is handling an op taken from queue
	rewalk    bool // a full re-walk is requested
	rewalking bool // ... or under way
}

func newPending(maxPaths int) *pending {
	return &pending{maxPaths: maxPaths, paths: map[string]struct{}{}}
}

func (p *pending) touch() {
	now := time.Now()
	if p.first.IsZero() {
		p.first = now
	}
	p.last = now
}

func (p *pending) addPath(rel string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.touch()
	if _, ok := p.paths[rel]; ok {
		return
	}
	if len(p.paths) >= p.maxPaths {
		p.overflow = true
		return
	}
	p.paths[rel] = struct{}{}
}

func (p *pending) markOverflow() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.touch()
	p.overflow = true
}

func (p *pending) push(o op) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rewalk {
		return // the coming re-walk covers it
	}
	if len(p.queue) >= p.maxPaths {
		p.requestRewalkLocked()
		return
	}
	p.queue = append(p.queue, o)
}

func (p *pending) requestRewalk() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requestRewalkLocked()
}

func (p *pending) requestRewalkLocked() {
	p.touch()
	p.overflow = true
	p.rewalk = true
	p.rewalking = true
	p.queue = nil
}

// next hands the walker its next piece of work: a full re-walk, an op, or
// nothing (ok false), in which case the walker is marked idle.
func (p *pending) next() (o op, rewalk, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rewalk {
		p.rewalk = false
		p.busy = true
		return op{}, true, true
	}
	if len(p.queue) == 0 {
		p.busy = false
		p.rewalking = false
		p.queue = nil // let a burst's backing array go
		return op{}, false, false
	}
	o = p.queue[0]
	p.queue = p.queue[1:]
	p.busy = true
	return o, false, true
}

// deadline says when the pending Batch is due; ok is false when nothing is
// pending or a re-walk must finish first. While the walker is busy, only
// maxDelay applies, so files found in new directories join the same Batch.
func (p *pending) deadline(debounce, maxDelay time.Duration) (at time.Time, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.paths) == 0 && !p.overflow {
		return time.Time{}, false
	}
	// An Overflow Batch tells the caller to rescan; sending it before the
	// watches are back would leave a window where changes go unseen.
	if p.rewalking {
		return time.Time{}, false
	}
	at = p.first.Add(maxDelay)
	if !p.busy && len(p.queue) == 0 {
		if quiet := p.last.Add(debounce); quiet.Before(at) {
			at = quiet
		}
	}
	return at, true
}

// take empties the pending Batch and returns it.
func (p *pending) take() Batch {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := Batch{Paths: make([]string, 0, len(p.paths)), Overflow: p.overflow}
	for rel := range p.paths {
		b.Paths = append(b.Paths, rel)
	}
	slices.Sort(b.Paths)
	p.paths = map[string]struct{}{}
	p.overflow = false
	p.first, p.last = time.Time{}, time.Time{}
	return b
}

// emitLoop sends each Batch when due. While the consumer is slow, it waits
// on the send and new events gather in the next Batch meanwhile.
func (w *Watcher) emitLoop() {
	defer close(w.out)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		at, ok := w.pend.deadline(w.opts.Debounce, w.opts.MaxDelay)
		if !ok {
			select {
			case <-w.kickEmit:
				continue
			case <-w.done:
				return
			}
		}
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-w.kickEmit:
			case <-w.done:
				timer.Stop()
				return
			}
			continue
		}
		select {
		case w.out <- w.pend.take():
		case <-w.done:
			return
		}
	}
}
