package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/daemon"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/relayops"
	"github.com/escale-sync/escale/pkg/storage"
)

var repoFlag = &cli.StringFlag{Name: "repo", Usage: "the repository `NAME` (needed when the configuration has several)"}

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:      "backup",
		Usage:     "copy every object of a repository's relay into a .tar.zst archive (no key needed)",
		ArgsUsage: "ARCHIVE.tar.zst  (- for standard output)",
		Description: "Copies the relay as it is stored — escale.json, the key slots, every client's objects, all\n" +
			"still encrypted — into a zstd-compressed tar. It needs no key, so it can run anywhere the relay is\n" +
			"reachable. It never overwrites an existing archive, writes ARCHIVE.tmp and renames it when\n" +
			"complete, and checks its own object count. Lock entries (locks/) are left out.\n\n" +
			"Taken while clients sync, the backup is a crash-consistent snapshot: objects deleted meanwhile\n" +
			"are left out, as if the relay had been frozen at some moment during the copy. With --lock (needs\n" +
			"the key) it holds the relay's admin lock, so no migrate or key change runs at the same time.\n" +
			"Put it back with `escale restore`.",
		Flags: []cli.Flag{
			repoFlag,
			&cli.BoolFlag{Name: "lock", Usage: "hold the admin lock while copying (needs the repository key)"},
			&cli.DurationFlag{Name: "wait", Usage: "with --lock, how long to wait for another holder of the lock"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return withCode(ExitError, errors.New("give one archive file: escale backup [--repo NAME] ARCHIVE.tar.zst"))
			}
			archive := c.Args().First()
			return withRepo(c, func(ev *env, r *config.Repository) error {
				ctx := ctxOf(c)
				relay, err := storage.Open(ctx, r.Relay)
				if err != nil {
					return withCode(ExitError, fmt.Errorf("repository %s: %w", r.Name, err))
				}
				defer relay.Close()
				if c.Bool("lock") {
					lock, err := adminLock(c, r, relay)
					if err != nil {
						return withCode(ExitError, err)
					}
					defer lock.Release(context.WithoutCancel(ctx))
					defer func() {
						select {
						case <-lock.Lost():
							fmt.Fprintf(c.App.ErrWriter, "escale: the admin lock of repository %s was lost during the backup: another admin operation may have run at the same time\n", r.Name)
						default:
						}
					}()
				}
				prog := newByteProgress(c.App.ErrWriter)
				report := c.App.Writer
				var st relayops.Stats
				if archive == "-" {
					if isTerminal(c.App.Writer) {
						return withCode(ExitError, errors.New("standard output is a terminal: redirect it to a file, or give a file name"))
					}
					report = c.App.ErrWriter
					st, err = relayops.Backup(ctx, relay, c.App.Writer, relayops.BackupOptions{Progress: prog})
				} else {
					st, err = relayops.BackupFile(ctx, relay, archive, relayops.BackupOptions{Progress: prog})
				}
				if err != nil {
					return withCode(ExitError, fmt.Errorf("backup of repository %s: %w", r.Name, err))
				}
				fmt.Fprintf(report, "%s: backed up %d objects (%s) of repository %s from %s to %s\n",
					r.Name, st.Objects, config.HumanSize(st.Bytes), st.Repository, relay, archive)
				if st.Vanished > 0 {
					fmt.Fprintf(report, "%s: %d objects were deleted by their clients during the copy and are not in the archive (normal while clients sync)\n", r.Name, st.Vanished)
				}
				return nil
			})
		},
	}
}

// pickRepo is the repository named, or the only one.
// withRepo loads the configuration and runs fn with the repository --repo
// names (or the only one).
func withRepo(c *cli.Context, fn func(ev *env, r *config.Repository) error) error {
	ev, err := setup(c, false)
	if err != nil {
		return err
	}
	defer ev.close()
	r, err := pickRepo(ev.cfg, c.String("repo"))
	if err != nil {
		return withCode(ExitError, err)
	}
	return fn(ev, r)
}

func pickRepo(cfg *config.Config, name string) (*config.Repository, error) {
	if name != "" {
		repos, err := daemon.Selected(cfg, []string{name})
		if err != nil {
			return nil, err
		}
		return repos[0], nil
	}
	switch len(cfg.Repositories) {
	case 0:
		return nil, fmt.Errorf("%s defines no repository", cfg.File)
	case 1:
		return &cfg.Repositories[0], nil
	}
	var names []string
	for _, r := range cfg.Repositories {
		names = append(names, r.Name)
	}
	return nil, fmt.Errorf("the configuration has %d repositories (%s): choose one with --repo NAME", len(names), strings.Join(names, ", "))
}

// openRepo opens the repository with its key, as sync does.
func openRepo(c *cli.Context, r *config.Repository, relay *storage.Relay) (*protocol.Repo, error) {
	creds, err := daemon.Credentials(r, nil, stdinTTY(c), c.App.ErrWriter)
	if err != nil {
		return nil, err
	}
	repo, err := protocol.Open(ctxOf(c), relay, r.Encryption != config.EncryptionNone, creds)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", r.Name, err)
	}
	return repo, nil
}

// adminLock takes the relay's admin lock for this client.
func adminLock(c *cli.Context, r *config.Repository, relay *storage.Relay) (*protocol.Lock, error) {
	repo, err := openRepo(c, r, relay)
	if err != nil {
		return nil, err
	}
	o := protocol.LockOptions{Owner: r.Client, Timeout: r.LockTimeout, Wait: c.Duration("wait")}
	lock, err := repo.AcquireLock(ctxOf(c), relayops.AdminLock, o)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", r.Name, err)
	}
	return lock, nil
}
