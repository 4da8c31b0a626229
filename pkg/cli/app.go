// Package cli is escale's command line: flag parsing, output and exit codes.
// It wires commands to the packages below it and holds no sync logic.
package cli

import (
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/urfave/cli/v2"

	"github.com/escale-sync/escale/pkg/version"
)

// Exit codes, stable for cron and monitoring (INTERFACE.md).
const (
	ExitOK      = 0 // all repositories in sync
	ExitError   = 1 // an error stopped at least one repository, or bad usage
	ExitWaiting = 2 // a round completed but something waits (quota, lock, conflict, held-back delete)
)

// exitError carries an exit code through urfave/cli without it calling os.Exit.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode wraps err so Main exits with code.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// NewApp builds the escale command tree writing to the given streams.
func NewApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                 "escale",
		Usage:                "sync folders between machines that cannot reach each other, through an encrypted relay",
		Version:              version.Version,
		Reader:               stdin,
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		HideVersion:          true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "configuration `FILE` (default: $ESCALE_CONFIG, then ~/.config/escale/escale.toml, then /etc/escale/escale.toml)", EnvVars: []string{"ESCALE_CONFIG"}},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error (overrides log_level)"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json"},
		},
		Commands: []*cli.Command{
			versionCommand(),
		},
		// urfave/cli would print and os.Exit on its own; Main decides instead.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	app.Commands = append(app.Commands, extraCommands()...)
	return app
}

// extraCommands lists the commands defined in the other files of this package.
func extraCommands() []*cli.Command {
	var cmds []*cli.Command
	for _, f := range commandSet {
		cmds = append(cmds, f())
	}
	return cmds
}

// Main runs escale with args and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := NewApp(stdin, stdout, stderr).Run(args)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "escale: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return ExitError
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print escale's version and the rclone and Go versions it embeds",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "escale %s\n", version.Version)
			fmt.Fprintf(c.App.Writer, "- os/arch: %s/%s\n", runtime.GOOS, runtime.GOARCH)
			fmt.Fprintf(c.App.Writer, "- go: %s\n", runtime.Version())
			fmt.Fprintf(c.App.Writer, "- rclone: %s\n", rcloneVersion())
			return nil
		},
	}
}
