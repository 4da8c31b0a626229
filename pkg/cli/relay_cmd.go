package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/relaycheck"
)

func relayCommand() *cli.Command {
	return &cli.Command{
		Name:  "relay",
		Usage: "work with relays",
		Subcommands: []*cli.Command{{
			Name:      "test",
			Usage:     "check that a relay does everything escale needs, and measure it",
			ArgsUsage: "RELAY",
			Description: "RELAY is remote:path from rclone.conf, an inline remote :type,opt=value:path, or a local\n" +
				"folder. The check works in a temporary folder on the relay and removes it afterwards, even\n" +
				"when interrupted. Exit code 0: the relay works; 1: it does not, and why.",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
				&cli.StringFlag{Name: "size", Value: "64MiB", Usage: "size of the streamed object"},
				&cli.IntFlag{Name: "small", Value: 64, Usage: "number of small objects timed"},
				&cli.StringFlag{Name: "rclone-config", Usage: "rclone.conf `FILE` holding the remotes"},
			},
			Action: relayTest,
		}},
	}
}

func relayTest(c *cli.Context) error {
	if c.NArg() != 1 {
		return withCode(ExitError, fmt.Errorf("usage: escale relay test RELAY (e.g. myremote:escale, or /mnt/disk/relay)"))
	}
	size, err := config.ParseSize(c.String("size"))
	if err != nil || size <= 0 {
		return withCode(ExitError, fmt.Errorf("--size %q: use a size such as 64MiB", c.String("size")))
	}
	ev, err := setup(c, true)
	if err != nil {
		return err
	}
	defer ev.close()
	ctx, stop := signal.NotifyContext(ctxOf(c), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := relaycheck.Options{BigSize: size, SmallCount: c.Int("small")}
	if !c.Bool("json") {
		opts.Progress = func(s string) { ev.log.Debug("relay test", "check", s) }
	}
	rep, runErr := relaycheck.Run(ctx, c.Args().First(), opts)
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(c.App.Writer, rep)
	}
	if runErr != nil {
		return withCode(ExitError, runErr)
	}
	if rep.Failed {
		return withCode(ExitError, fmt.Errorf("relay %s failed checks escale needs (see above)", rep.Relay))
	}
	return nil
}

func printReport(w io.Writer, rep *relaycheck.Report) {
	if len(rep.Checks) == 0 {
		return
	}
	fmt.Fprintf(w, "relay %s (%s)\n", rep.Relay, rep.Backend)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, ch := range rep.Checks {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", ch.Name, ch.Status, ch.Detail)
	}
	tw.Flush()
	verdict := "the relay works with escale"
	if rep.Failed {
		verdict = "the relay does NOT work with escale"
	}
	fmt.Fprintf(w, "%s (%.1f s)\n", verdict, rep.Duration)
}
