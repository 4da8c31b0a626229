package cli

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/relayops"
	"github.com/escale-sync/escale/pkg/storage"
)

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:      "migrate",
		Usage:     "copy a repository's relay to another remote, then point this configuration at it",
		ArgsUsage: "DEST  (an rclone remote \"name:path\", an inline remote \":type,opt=value:path\" or a local folder)",
		Description: "Holds the relay's admin lock (so it needs the repository key), refuses a DEST that is not empty,\n" +
			"copies every object (escale.json last), and checks that both sides list the same names and\n" +
			"sizes, and hashes where both backends report one. Then it rewrites the relay line of the\n" +
			"repository in the configuration file, keeping everything else as it was and the old file as\n" +
			"FILE.bak (--no-switch leaves the file alone). The source relay is left intact.\n\n" +
			"Stop `escale sync` on every client first: what a client pushes to the old relay after the copy\n" +
			"does not reach the new one (objects written during the copy are carried by a second pass). Then\n" +
			"change the relay line on every other client as printed, and restart them.",
		Flags: []cli.Flag{
			repoFlag,
			&cli.BoolFlag{Name: "no-switch", Usage: "copy only; leave the configuration file as it is"},
			&cli.DurationFlag{Name: "wait", Usage: "how long to wait for another holder of the admin lock"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return withCode(ExitError, errors.New("give the destination relay: escale migrate [--repo NAME] DEST"))
			}
			dest, err := relayops.AbsRelay(c.Args().First())
			if err != nil {
				return withCode(ExitError, err)
			}
			return withRepo(c, func(ev *env, r *config.Repository) error {
				if dest == r.Relay {
					return withCode(ExitError, fmt.Errorf("repository %s already uses %s", r.Name, storage.Redact(dest)))
				}
				ctx := ctxOf(c)
				src, err := storage.Open(ctx, r.Relay)
				if err != nil {
					return withCode(ExitError, fmt.Errorf("repository %s: %w", r.Name, err))
				}
				defer src.Close()
				dst, err := storage.Open(ctx, dest)
				if err != nil {
					return withCode(ExitError, fmt.Errorf("destination: %w", err))
				}
				defer dst.Close()
				repo, err := openRepo(c, r, src)
				if err != nil {
					return withCode(ExitError, err)
				}
				o := relayops.MigrateOptions{Progress: newByteProgress(c.App.ErrWriter)}
				o.Lock.Owner, o.Lock.Timeout, o.Lock.Wait = r.Client, r.LockTimeout, c.Duration("wait")
				st, err := relayops.Migrate(ctx, repo, dst, o)
				if err != nil {
					return withCode(ExitError, fmt.Errorf("migrate repository %s: %w", r.Name, err))
				}
				w := c.App.Writer
				verified := "names and sizes"
				if st.Hashed > 0 {
					verified += fmt.Sprintf(", and hashes for %d objects", st.Hashed)
				}
				fmt.Fprintf(w, "%s: copied %d objects (%s) of repository %s from %s to %s; verified %s\n",
					r.Name, st.Objects, config.HumanSize(st.Bytes), st.Repository, src, dst, verified)
				line := relayops.RelayLine(dest)
				if c.Bool("no-switch") {
					fmt.Fprintf(w, "The configuration is unchanged (--no-switch). To use the new relay, set in [repository.%s]:\n    %s\n", r.Name, line)
				} else {
					bak, err := relayops.SwitchRelay(ev.cfg.File, r.Name, dest)
					if err != nil {
						return withCode(ExitError, fmt.Errorf("the relay is copied, but the configuration could not be switched: %w", err))
					}
					fmt.Fprintf(w, "%s now uses the new relay (the previous file is %s).\n", ev.cfg.File, bak)
					fmt.Fprintf(w, "On every other client of %s, stop escale and set in its [repository.%s] table:\n    %s\n", st.Repository, r.Name, line)
				}
				fmt.Fprintf(w, "The old relay %s is intact. Once every client uses the new one, delete it (e.g. `rclone purge` on it).\n", src)
				return nil
			})
		},
	}
}
