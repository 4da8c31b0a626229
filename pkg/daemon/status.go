package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/engine"
)

// RepoStatus is the snapshot a run leaves in state_dir/NAME/status.json
// after every round, so `escale status` can report while a daemon holds
// the repository's state database.
type RepoStatus struct {
	Repo         string         `json:"repository"`
	Running      bool           `json:"running"`       // filled in by the reader
	PID          int            `json:"pid,omitempty"` // of the process that holds the repository
	Updated      time.Time      `json:"updated"`
	LastSuccess  time.Time      `json:"last_success,omitempty"`
	Error        string         `json:"error,omitempty"`
	Waiting      []string       `json:"waiting,omitempty"`
	Problems     []string       `json:"problems,omitempty"`
	PollInterval string         `json:"poll_interval,omitempty"`
	Round        *engine.Result `json:"last_round,omitempty"`
	State        *engine.Status `json:"state,omitempty"`
}

func statusPath(cfg *config.Config, repo string) string {
	return filepath.Join(cfg.StateDir, repo, "status.json")
}

// writeStatus records the outcome of a round atomically.
func writeStatus(cfg *config.Config, e *engine.Engine, o Outcome, poll time.Duration, prev *RepoStatus) *RepoStatus {
	s := &RepoStatus{Repo: o.Repo, PID: os.Getpid(), Updated: time.Now().UTC(), Round: o.Result}
	if prev != nil {
		s.LastSuccess = prev.LastSuccess
	}
	if o.Err != nil {
		s.Error = o.Err.Error()
	} else {
		s.LastSuccess = s.Updated
	}
	if o.Result != nil {
		s.Waiting, s.Problems = o.Result.Waiting, o.Result.Problems
	}
	if poll > 0 {
		s.PollInterval = poll.String()
	}
	if e != nil {
		if st, err := e.Status(); err == nil {
			s.State = st
		}
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return s
	}
	p := statusPath(cfg, o.Repo)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return s
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err == nil {
		_ = os.Rename(tmp, p)
	}
	return s
}

// ReadStatus returns the last snapshot of each selected repository, and
// whether a process holds it now.
func ReadStatus(cfg *config.Config, names []string) ([]*RepoStatus, error) {
	repos, err := Selected(cfg, names)
	if err != nil {
		return nil, err
	}
	var out []*RepoStatus
	for _, r := range repos {
		s := &RepoStatus{Repo: r.Name}
		data, err := os.ReadFile(statusPath(cfg, r.Name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			s.Error = "never synced on this machine: run `escale sync --once`"
		case err != nil:
			return nil, fmt.Errorf("status of %s: %w", r.Name, err)
		default:
			if err := json.Unmarshal(data, s); err != nil {
				return nil, fmt.Errorf("status of %s: %w", r.Name, err)
			}
		}
		s.Running, s.PID = holder(filepath.Join(cfg.StateDir, r.Name, "state.db.pid"))
		out = append(out, s)
	}
	return out, nil
}

// holder reports whether the process named in a state database's pid file
// is alive.
func holder(pidFile string) (bool, int) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return false, 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false, 0
	}
	return processAlive(pid), pid
}
