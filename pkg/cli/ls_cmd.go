package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/daemon"
	"github.com/escale-sync/escale/pkg/engine"
	"github.com/escale-sync/escale/pkg/storage"
)

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:  "ls",
		Usage: "show what is on each repository's relay, decrypted: clients, pending updates, sizes, ages",
		Description: "Reads the relay only (it works while `escale sync` runs). Names come from the clients'\n" +
			"encrypted records, so the repository key is needed.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print as JSON"},
			&cli.StringSliceFlag{Name: "repo", Usage: "only this repository (repeatable)"},
		},
		Action: func(c *cli.Context) error {
			ev, err := setup(c, false)
			if err != nil {
				return err
			}
			defer ev.close()
			repos, err := daemon.Selected(ev.cfg, c.StringSlice("repo"))
			if err != nil {
				return withCode(ExitError, err)
			}
			var views []*engine.RelayView
			for _, r := range repos {
				creds, err := daemon.Credentials(r, nil, stdinTTY(c), c.App.ErrWriter)
				if err != nil {
					return withCode(ExitError, err)
				}
				relay, err := storage.Open(ctxOf(c), r.Relay)
				if err != nil {
					return withCode(ExitError, err)
				}
				v, err := engine.ViewRelay(ctxOf(c), relay, r.Encryption != config.EncryptionNone, creds)
				relay.Close()
				if err != nil {
					return withCode(ExitError, fmt.Errorf("repository %s: %w", r.Name, err))
				}
				views = append(views, v)
				if !c.Bool("json") {
					printView(c, r.Name, r.Relay, v)
				}
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(views)
			}
			return nil
		},
	}
}

func printView(c *cli.Context, name, relay string, v *engine.RelayView) {
	w := c.App.Writer
	fmt.Fprintf(w, "%s: relay %s, repository %s, encryption %s, %s in all\n", name, storage.Redact(relay), v.Repository, v.Encryption, config.HumanSize(v.Bytes))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  client\tmode\tupdates\tpending\tdata objects\tsize\toldest pending\tacks written")
	for _, cl := range v.Clients {
		oldest, acked := "-", "-"
		if !cl.Oldest.IsZero() {
			oldest = time.Since(cl.Oldest).Round(time.Second).String() + " ago"
		}
		if !cl.AckedAt.IsZero() {
			acked = time.Since(cl.AckedAt).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", cl.Name, cl.Mode, cl.Published, cl.Updates, cl.Objects, config.HumanSize(cl.Bytes), oldest, acked)
	}
	tw.Flush()
}
