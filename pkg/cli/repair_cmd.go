package cli

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"filippo.io/age"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/daemon"
	"github.com/escale-sync/escale/pkg/engine"
	"github.com/escale-sync/escale/pkg/envelope"
)

func repairCommand() *cli.Command {
	return &cli.Command{
		Name:      "repair",
		Usage:     "rebuild a wiped or replaced relay from this client's state",
		ArgsUsage: " ",
		Description: "A client whose relay lost its repository stops and changes nothing locally. `escale repair`\n" +
			"rebuilds it from the clients, which all keep their folders and synced state:\n\n" +
			"  --keys EXPORT  puts the same repository back (its id and keys, from `escale key export`);\n" +
			"                 the other clients then carry on by themselves, publishing again what the\n" +
			"                 relay lost.\n" +
			"  --new          starts a new repository (new id and key) on the empty relay; run\n" +
			"                 `escale repair --new` on every other client to join it. Each client\n" +
			"                 announces its whole tree, and what differs between them is sent again.\n\n" +
			"Then one round runs, as with `escale sync --once`.",
		Flags: []cli.Flag{
			repoFlag,
			&cli.StringFlag{Name: "keys", Usage: "a key export `FILE` (escale key export) of the repository"},
			&cli.StringFlag{Name: "keys-passphrase-file", Usage: "`FILE` holding the export's passphrase (else $ESCALE_KEYS_PASSPHRASE, else a prompt)"},
			&cli.BoolFlag{Name: "new", Usage: "start a new repository on the empty relay, or join the one another client started"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return withCode(ExitError, errors.New("escale repair takes no arguments: escale repair [--repo NAME] (--keys EXPORT | --new)"))
			}
			if (c.String("keys") == "") == !c.Bool("new") {
				return withCode(ExitError, errors.New("give --keys EXPORT (the same repository back) or --new (a new repository), one of them"))
			}
			return withRepo(c, func(ev *env, r *config.Repository) error {
				rp := &engine.Repair{New: c.Bool("new")}
				if f := c.String("keys"); f != "" {
					krs, err := readKeyExport(c, f)
					if err != nil {
						return withCode(ExitError, err)
					}
					rp.Keyrings = krs
				}
				ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
				defer stop()
				o := daemon.Options{Repos: []string{r.Name}, Logger: ev.log, TTY: stdinTTY(c), Prompt: c.App.ErrWriter, Repair: rp}
				outs, err := daemon.Once(ctx, ev.cfg, o)
				if err != nil {
					return withCode(ExitError, err)
				}
				return onceSummary(c, outs)
			})
		},
	}
}

// readKeyExport opens a key export with its passphrase.
func readKeyExport(c *cli.Context, file string) ([]*envelope.Keyring, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read the key export: %w", err)
	}
	var pass string
	switch {
	case c.String("keys-passphrase-file") != "":
		b, err := os.ReadFile(c.String("keys-passphrase-file"))
		if err != nil {
			return nil, fmt.Errorf("read the export's passphrase: %w", err)
		}
		pass = strings.TrimRight(string(b), "\r\n")
	case os.Getenv("ESCALE_KEYS_PASSPHRASE") != "":
		pass = os.Getenv("ESCALE_KEYS_PASSPHRASE")
	case stdinTTY(c) != nil && term.IsTerminal(int(stdinTTY(c).Fd())):
		fmt.Fprintf(c.App.ErrWriter, "passphrase of %s: ", file)
		b, err := term.ReadPassword(int(stdinTTY(c).Fd()))
		fmt.Fprintln(c.App.ErrWriter)
		if err != nil {
			return nil, fmt.Errorf("read the export's passphrase: %w", err)
		}
		pass = string(b)
	default:
		return nil, errors.New("the key export's passphrase: give --keys-passphrase-file or set ESCALE_KEYS_PASSPHRASE")
	}
	id, err := age.NewScryptIdentity(pass)
	if err != nil {
		return nil, err
	}
	krs, err := envelope.Unwrap(data, id)
	if err != nil {
		return nil, fmt.Errorf("open the key export %s: %w (wrong passphrase, or not an `escale key export` file)", file, err)
	}
	return krs, nil
}
