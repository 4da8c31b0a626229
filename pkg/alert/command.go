package alert

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"time"
)

// maxOutput caps what is kept of a command's output for the log.
const maxOutput = 16 << 10

// command starts t.OnError in the background for ev.
func (n *Notifier) command(t Target, ev Event, msg string) {
	if t.OnError == "" {
		return
	}
	n.background(func() { n.runCommand(t, ev, msg) })
}

// runCommand runs the hook through the shell with the ESCALE_ variables,
// kills it (and whatever it started) after the timeout, and logs the result.
func (n *Notifier) runCommand(t Target, ev Event, msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.CommandTimeout)
	defer cancel()
	cmd := shellCommand(ctx, t.OnError)
	cmd.Env = append(os.Environ(),
		"ESCALE_REPOSITORY="+t.Repo,
		"ESCALE_CLIENT="+t.Client,
		"ESCALE_EVENT="+string(ev),
		"ESCALE_ERROR="+msg,
	)
	out := &limitedBuffer{max: maxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	// A grandchild that keeps the output open must not hold Wait forever.
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	log := n.log.With("repo", t.Repo, "event", string(ev), "command", t.OnError, "took", time.Since(start).Round(time.Millisecond))
	text := strings.TrimSpace(out.String())
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		log.Warn("on_error command killed: it ran longer than its timeout; make it finish sooner or run its slow part in the background",
			"timeout", n.opts.CommandTimeout, "output", text)
	case err != nil:
		log.Warn("on_error command failed; check it by hand with the ESCALE_ variables set", "err", err, "output", text)
	default:
		log.Info("on_error command ran", "output", text)
	}
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
	cut bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room < len(p) {
		b.buf.Write(p[:max(room, 0)])
		b.cut = true
	} else {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut {
		return b.buf.String() + "…(cut)"
	}
	return b.buf.String()
}
