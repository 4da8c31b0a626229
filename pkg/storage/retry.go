package storage

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/fserrors"
)

// Defaults for OpenOption.
const (
	DefaultTimeout     = time.Minute     // each attempt of a metadata call
	DefaultDataTimeout = 5 * time.Minute // each attempt of a Put; an Open reader's whole life
	DefaultTries       = 5
	DefaultMinBackoff  = 100 * time.Millisecond
	DefaultMaxBackoff  = 10 * time.Second
	maxRetryAfter      = time.Minute // cap on a server's Retry-After
)

// OpenOption tunes a Relay.
type OpenOption func(*openConfig)

type openConfig struct {
	timeout     time.Duration
	dataTimeout time.Duration
	tries       int
	minBackoff  time.Duration
	maxBackoff  time.Duration
}

func defaultOpenConfig() openConfig {
	return openConfig{
		timeout:     DefaultTimeout,
		dataTimeout: DefaultDataTimeout,
		tries:       DefaultTries,
		minBackoff:  DefaultMinBackoff,
		maxBackoff:  DefaultMaxBackoff,
	}
}

// WithTimeout sets the deadline of each attempt of a metadata call (Stat,
// List, Delete, Move, Rmdir, Purge, About, and opening the backend).
func WithTimeout(d time.Duration) OpenOption {
	return func(c *openConfig) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithDataTimeout sets the deadline of each attempt of a Put and Walk, and of
// the whole life of a reader from Open (opening, reading, closing).
func WithDataTimeout(d time.Duration) OpenOption {
	return func(c *openConfig) {
		if d > 0 {
			c.dataTimeout = d
		}
	}
}

// WithRetries sets how many times in all a call is tried when it fails with
// a transient error (rclone's convention: 1 means no retry).
func WithRetries(n int) OpenOption {
	return func(c *openConfig) { c.tries = max(n, 1) }
}

// WithBackoff sets the bounds of the exponential backoff between tries.
func WithBackoff(minWait, maxWait time.Duration) OpenOption {
	return func(c *openConfig) {
		if minWait > 0 {
			c.minBackoff = minWait
		}
		c.maxBackoff = max(maxWait, c.minBackoff)
	}
}

// backoff is the wait before try number attempt+1: exponential from
// minBackoff, capped at maxBackoff, with "equal jitter" (half fixed, half
// random) so clients that failed together do not retry together. A server's
// Retry-After, when rclone surfaced one, is honoured up to maxRetryAfter.
func (c *openConfig) backoff(attempt int, err error) time.Duration {
	d := c.minBackoff
	for i := 1; i < attempt && d < c.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.maxBackoff)
	d = d/2 + rand.N(d/2+1)
	if at := fserrors.RetryAfterErrorTime(err); !at.IsZero() {
		d = max(d, min(time.Until(at), maxRetryAfter))
	}
	return d
}

// attemptFn is one try of a call, under its own deadline.
type attemptFn func(ctx context.Context) error

// call describes a relay call for do.
type call struct {
	op, name string
	timeout  time.Duration   // deadline of each try
	cfgCtx   context.Context // rclone config for the call; nil means the relay's
	canRetry func() bool     // may veto a retry (an upload that cannot rewind); nil allows
}

// do runs fn until it succeeds, fails with a non-transient error, runs out of
// tries, or ctx ends. The result is a classified *Error.
func (r *Relay) do(ctx context.Context, c call, fn attemptFn) error {
	cfgCtx := c.cfgCtx
	if cfgCtx == nil {
		cfgCtx = r.cfgCtx
	}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(fs.CopyConfig(ctx, cfgCtx), c.timeout)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		if classify(err) != KindTransient || attempt >= r.cfg.tries || ctx.Err() != nil ||
			(c.canRetry != nil && !c.canRetry()) {
			return r.wrap(c.op, c.name, err)
		}
		wait := r.cfg.backoff(attempt, err)
		escaleLogger().Debug("relay call failed, retrying", "relay", r.spec.display, "op", c.op,
			"name", c.name, "try", attempt, "tries", r.cfg.tries, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return r.wrap(c.op, c.name, err)
		}
	}
}

// wrap classifies err into a *Error for op on name.
func (r *Relay) wrap(op, name string, err error) error {
	if err == nil {
		return nil
	}
	if se, ok := err.(*Error); ok && se.Op != "" {
		return se
	}
	return &Error{Op: op, Name: name, Kind: classify(err), Err: err}
}
