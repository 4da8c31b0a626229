package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/relayops"
	"github.com/escale-sync/escale/pkg/storage"
)

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "put the objects of an `escale backup` archive back into a repository's relay (no key needed)",
		ArgsUsage: "ARCHIVE.tar.zst  (- for standard input)",
		Description: "Writes every object of the archive into the relay configured for the repository. It first\n" +
			"checks that the archive is an escale relay backup and refuses a relay that holds another\n" +
			"repository, or any object at all unless --force (which makes the relay exactly the archive's:\n" +
			"objects not in it are deleted). escale.json is written last, once the whole archive has been\n" +
			"read and checked, so an interrupted restore never looks like a valid relay; run it again with\n" +
			"--force.\n\n" +
			"After a restore to an older state, a client that had already applied updates newer than the\n" +
			"backup detects the rollback: its round stops with an error saying the relay was rolled back, and\n" +
			"it applies nothing from the relay (nothing local is deleted). Clients that had seen nothing newer\n" +
			"carry on as usual. To bring back a client that stopped, restore a newer backup if there is one;\n" +
			"otherwise stop it, move its state for the repository (the folder named after the repository in\n" +
			"state_dir) away, give it a new `client` name, and sync: it joins as a new client, and where its\n" +
			"files differ from the relay's both versions are kept, one as a conflict copy.",
		Flags: []cli.Flag{
			repoFlag,
			&cli.BoolFlag{Name: "force", Usage: "restore into a relay that already holds objects of this repository (or none), replacing them"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return withCode(ExitError, errors.New("give one archive: escale restore [--repo NAME] [--force] ARCHIVE.tar.zst"))
			}
			archive := c.Args().First()
			return withRepo(c, func(ev *env, r *config.Repository) error {
				var in io.Reader = c.App.Reader
				if archive != "-" {
					f, err := os.Open(archive)
					if err != nil {
						return withCode(ExitError, fmt.Errorf("open the archive: %w", err))
					}
					defer f.Close()
					in = f
				}
				ctx := ctxOf(c)
				relay, err := storage.Open(ctx, r.Relay)
				if err != nil {
					return withCode(ExitError, fmt.Errorf("repository %s: %w", r.Name, err))
				}
				defer relay.Close()
				st, err := relayops.Restore(ctx, relay, in, relayops.RestoreOptions{Force: c.Bool("force"), Progress: newByteProgress(c.App.ErrWriter)})
				if err != nil {
					return withCode(ExitError, fmt.Errorf("restore of repository %s from %s: %w", r.Name, archive, err))
				}
				fmt.Fprintf(c.App.Writer, "%s: restored %d objects (%s) of repository %s into %s\n",
					r.Name, st.Objects, config.HumanSize(st.Bytes), st.Repository, relay)
				if st.Deleted > 0 {
					fmt.Fprintf(c.App.Writer, "%s: deleted %d objects that were not in the archive\n", r.Name, st.Deleted)
				}
				return nil
			})
		},
	}
}
