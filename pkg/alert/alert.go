// Package alert tells people when a repository fails: it runs the
// configured on_error command and mails the repository's maintainer, once
// per failure episode rather than on every retry.
//
// An episode starts with the first failed round after a success (or after
// a start with no failure on record). Within an episode:
//   - the command runs when the episode starts and again each time the
//     error text changes, with ESCALE_EVENT=failed; it runs once more with
//     ESCALE_EVENT=recovered when a round succeeds again;
//   - mail goes out on the same events, but at most one failure mail per
//     repository per Options.Interval (alert_interval). A failure mail held
//     back by that limit is sent by a later failed round once the interval
//     has passed, so a long outage is always reported. A recovery mail is
//     sent only when the episode's failure was mailed, and it is not
//     limited: whoever was told of the failure is told it is over.
//
// The episode state is kept in a small file per repository (Options.StateFile),
// so `escale sync --once` from cron and a restarted daemon do not report
// the same failure again.
//
// Observe never blocks on the command or the mail server: both run in the
// background, and Wait waits for them (before a process exits).
package alert

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Event is what happened to a repository.
type Event string

// The events, as passed in ESCALE_EVENT.
const (
	Failed    Event = "failed"
	Recovered Event = "recovered"
)

// Target is one repository and who to tell about it.
type Target struct {
	Repo       string
	Client     string
	OnError    string // shell command; "" = none
	Maintainer string // address list; "" = no mail
}

// Options configure a Notifier.
type Options struct {
	Mail MailOptions
	// Interval is the least time between two failure mails about one
	// repository; 0 = no limit.
	Interval time.Duration
	// CommandTimeout bounds the on_error command, which is killed (with
	// its children) after it; default DefaultCommandTimeout.
	CommandTimeout time.Duration
	// StateFile names the file that keeps a repository's episode between
	// runs; nil or "" = memory only.
	StateFile func(repo string) string
	Logger    *slog.Logger
	Now       func() time.Time
}

// DefaultCommandTimeout: an alert hook that needs more than a minute is
// stuck, and must not pile up behind the next failure.
const DefaultCommandTimeout = time.Minute

// Notifier tracks the failure episodes of repositories. It is safe for
// concurrent use.
type Notifier struct {
	opts Options
	log  *slog.Logger
	mu   sync.Mutex
	eps  map[string]*episode
	wg   sync.WaitGroup
}

// episode is one repository's alert state, as saved in its state file.
type episode struct {
	Failing bool      `json:"failing"`
	Error   string    `json:"error,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	// Mailed: a failure mail of this episode went out; Pending: an event
	// of this episode still waits for the rate limit.
	Mailed   bool      `json:"mailed,omitempty"`
	Pending  bool      `json:"pending,omitempty"`
	LastMail time.Time `json:"last_mail,omitzero"`
}

// New returns a Notifier.
func New(opts Options) *Notifier {
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = DefaultCommandTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Notifier{opts: opts, log: opts.Logger, eps: map[string]*episode{}}
}

// Observe records the outcome of one round of t.Repo (err nil = success)
// and starts the command and the mail the outcome calls for. A cancelled
// round (the run stopping) says nothing about the repository and is ignored.
func (n *Notifier) Observe(t Target, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	ep := n.episode(t.Repo)
	now := n.opts.Now()
	before := *ep
	switch {
	case err != nil:
		msg := err.Error()
		if !ep.Failing || msg != ep.Error {
			if !ep.Failing {
				ep.Since = now
				ep.Mailed = false
			}
			ep.Failing, ep.Error, ep.Pending = true, msg, true
			n.command(t, Failed, msg)
		}
		if ep.Pending && t.Maintainer != "" && (ep.LastMail.IsZero() || now.Sub(ep.LastMail) >= n.opts.Interval) {
			n.mail(t, Failed, ep.Error, ep.Since, now)
			ep.LastMail, ep.Mailed, ep.Pending = now, true, false
		} else if ep.Pending && t.Maintainer != "" {
			n.log.Info("alert mail held back by alert_interval; a later failed round sends it", "repo", t.Repo,
				"next", ep.LastMail.Add(n.opts.Interval).Format(time.RFC3339))
		}
	case ep.Failing:
		n.command(t, Recovered, ep.Error)
		if ep.Mailed && t.Maintainer != "" {
			n.mail(t, Recovered, ep.Error, ep.Since, now)
		}
		ep.Failing, ep.Error, ep.Mailed, ep.Pending, ep.Since = false, "", false, false, time.Time{}
	}
	if *ep != before {
		n.save(t.Repo, ep)
	}
}

// Wait waits for the commands and mails already started.
func (n *Notifier) Wait() { n.wg.Wait() }

// episode returns repo's state, loading it from its file the first time.
func (n *Notifier) episode(repo string) *episode {
	if ep, ok := n.eps[repo]; ok {
		return ep
	}
	ep := &episode{}
	if p := n.stateFile(repo); p != "" {
		data, err := os.ReadFile(p)
		switch {
		case err == nil:
			if err := json.Unmarshal(data, ep); err != nil {
				n.log.Warn("alert state unreadable; starting afresh", "repo", repo, "file", p, "err", err)
				*ep = episode{}
			}
		case !errors.Is(err, os.ErrNotExist):
			n.log.Warn("alert state unreadable; starting afresh", "repo", repo, "file", p, "err", err)
		}
	}
	n.eps[repo] = ep
	return ep
}

func (n *Notifier) stateFile(repo string) string {
	if n.opts.StateFile == nil {
		return ""
	}
	return n.opts.StateFile(repo)
}

// save writes repo's state atomically; a failure only costs a repeated
// alert after a restart, so it is logged, not returned.
func (n *Notifier) save(repo string, ep *episode) {
	p := n.stateFile(repo)
	if p == "" {
		return
	}
	data, err := json.Marshal(ep)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(p), 0o700)
	}
	if err == nil {
		tmp := p + ".tmp"
		if err = os.WriteFile(tmp, data, 0o600); err == nil {
			err = os.Rename(tmp, p)
		}
	}
	if err != nil {
		n.log.Warn("cannot save the alert state; a restart may repeat the last alert", "repo", repo, "err", err)
	}
}

// background runs f on its own goroutine, counted by Wait.
func (n *Notifier) background(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}
