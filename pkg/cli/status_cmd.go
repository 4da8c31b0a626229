package cli

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/escale-sync/escale/pkg/daemon"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show each repository's last round, what waits, and how far the other clients are",
		Description: "Reads the snapshot the daemon (or the last `sync --once`) leaves after every round, so it\n" +
			"works while `escale sync` runs. Exit code 0, or 1 when a repository's last round failed.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the status as JSON"},
			&cli.StringSliceFlag{Name: "repo", Usage: "only this repository (repeatable)"},
		},
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return withCode(ExitError, err)
			}
			sts, err := daemon.ReadStatus(cfg, c.StringSlice("repo"))
			if err != nil {
				return withCode(ExitError, err)
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if err := enc.Encode(sts); err != nil {
					return err
				}
			} else {
				for _, s := range sts {
					printStatus(c, s)
				}
			}
			for _, s := range sts {
				if s.Error != "" {
					return withCode(ExitError, fmt.Errorf("repository %s: %s", s.Repo, s.Error))
				}
			}
			return nil
		},
	}
}

func printStatus(c *cli.Context, s *daemon.RepoStatus) {
	w := c.App.Writer
	running := "not running"
	if s.Running {
		running = fmt.Sprintf("running (pid %d)", s.PID)
	}
	fmt.Fprintf(w, "%s: %s\n", s.Repo, running)
	if !s.Updated.IsZero() {
		fmt.Fprintf(w, "  last round:    %s (%s ago)\n", s.Updated.Local().Format(time.DateTime), time.Since(s.Updated).Round(time.Second))
	}
	if !s.LastSuccess.IsZero() {
		fmt.Fprintf(w, "  last success:  %s\n", s.LastSuccess.Local().Format(time.DateTime))
	}
	if s.PollInterval != "" {
		fmt.Fprintf(w, "  next poll in:  %s\n", s.PollInterval)
	}
	if s.Error != "" {
		fmt.Fprintf(w, "  error:         %s\n", s.Error)
	}
	if st := s.State; st != nil {
		fmt.Fprintf(w, "  files:         %d (%d conflict copies, %d with access modifiers)\n", st.Files, st.Conflicts, st.Access)
		fmt.Fprintf(w, "  on the relay:  %d of this client's updates waiting for pullers, %d bytes\n", st.Pending, st.PendingBytes)
		if st.Wants > 0 {
			fmt.Fprintf(w, "  missing:       %d files wait for another client to send them again\n", st.Wants)
		}
		names := map[string]bool{}
		for n := range st.Applied {
			names[n] = true
		}
		for n := range st.AckedBy {
			names[n] = true
		}
		var list []string
		for n := range names {
			list = append(list, n)
		}
		sort.Strings(list)
		for _, n := range list {
			fmt.Fprintf(w, "  client %-12s applied from it: %d; it has our updates up to %d of %d\n", n, st.Applied[n], st.AckedBy[n], st.Seq)
		}
	}
	for _, x := range s.Waiting {
		fmt.Fprintf(w, "  waiting:       %s\n", x)
	}
	for _, x := range s.Problems {
		fmt.Fprintf(w, "  problem:       %s\n", strings.TrimSpace(x))
	}
}
