package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/escale-sync/escale/pkg/importconf"
)

func importConfigCommand() *cli.Command {
	return &cli.Command{
		Name:      "import-config",
		Usage:     "convert a configuration of the original escale (INI) to escale's TOML",
		ArgsUsage: "OLD.conf",
		Description: "Writes the TOML to standard output (or -o FILE) and lists on standard error each old\n" +
			"option that has no equivalent, or changed. A passphrase written in the old file goes to a\n" +
			"file of its own (mode 0600) next to the output, never into the TOML; relay passwords go into\n" +
			"an rclone remote, and the notes say how to create it.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the TOML to `FILE` instead of standard output"},
			&cli.BoolFlag{Name: "force", Usage: "overwrite the output file if it exists"},
		},
		Action: runImportConfig,
	}
}

func runImportConfig(c *cli.Context) error {
	old, out, force, err := importArgs(c)
	if err != nil {
		return withCode(ExitError, err)
	}
	data, err := os.ReadFile(old)
	if err != nil {
		return withCode(ExitError, fmt.Errorf("read the old configuration: %w", err))
	}
	secretDir := "."
	if out != "" {
		secretDir = filepath.Dir(out)
		if _, err := os.Stat(out); err == nil && !force {
			return withCode(ExitError, fmt.Errorf("%s exists; choose another -o file, or add --force to overwrite it", out))
		}
	}
	res, err := importconf.Convert(old, data, importconf.Options{SecretDir: secretDir})
	if err != nil {
		var ie *importconf.Error
		if errors.As(err, &ie) {
			for _, p := range ie.Problems {
				fmt.Fprintln(c.App.ErrWriter, p)
			}
			return withCode(ExitError, fmt.Errorf("%s has %s; fix %s and run import-config again", old, plural(len(ie.Problems), "bad value"), them(len(ie.Problems))))
		}
		return withCode(ExitError, err)
	}
	for _, s := range res.Secrets {
		if err := writeSecret(s); err != nil {
			return withCode(ExitError, err)
		}
		fmt.Fprintf(c.App.ErrWriter, "wrote %s (mode 0600)\n", s.Path)
	}
	for _, n := range res.Notes {
		fmt.Fprintln(c.App.ErrWriter, n)
	}
	if out == "" {
		_, err := c.App.Writer.Write(res.TOML)
		return err
	}
	if err := os.WriteFile(out, res.TOML, 0o644); err != nil {
		return withCode(ExitError, fmt.Errorf("write the new configuration: %w", err))
	}
	fmt.Fprintf(c.App.ErrWriter, "wrote %s; check it with `escale --config %s config check`\n", out, out)
	return nil
}

// importArgs reads OLD.conf and the flags, which may also follow it
// ("import-config OLD.conf -o NEW.toml", as INTERFACE.md writes it), where
// urfave/cli no longer parses flags.
func importArgs(c *cli.Context) (old, out string, force bool, err error) {
	out, force = c.String("output"), c.Bool("force")
	args := c.Args().Slice()
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-o" || a == "--output" || a == "-output":
			if i+1 == len(args) {
				return "", "", false, errors.New("-o needs a file name: escale import-config OLD.conf -o NEW.toml")
			}
			out = args[i+1]
			i++
		case strings.HasPrefix(a, "-o=") || strings.HasPrefix(a, "--output="):
			_, out, _ = strings.Cut(a, "=")
		case a == "--force" || a == "-force":
			force = true
		case old == "":
			old = a
		default:
			return "", "", false, fmt.Errorf("unexpected %q: usage: escale import-config OLD.conf [-o NEW.toml] [--force]", a)
		}
	}
	if old == "" {
		return "", "", false, errors.New("usage: escale import-config OLD.conf [-o NEW.toml] [--force]")
	}
	return old, out, force, nil
}

// writeSecret creates a passphrase file readable by its owner only. An
// existing file with the same content is fine (a second import); one with
// other content is never overwritten.
func writeSecret(s importconf.Secret) error {
	f, err := os.OpenFile(s.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		if old, rerr := os.ReadFile(s.Path); rerr == nil && bytes.Equal(old, s.Data) {
			return nil
		}
		return fmt.Errorf("%s exists with another content; move it away and run import-config again", s.Path)
	}
	if err != nil {
		return fmt.Errorf("write the passphrase file: %w", err)
	}
	if _, err := f.Write(s.Data); err != nil {
		f.Close()
		return fmt.Errorf("write the passphrase file %s: %w", s.Path, err)
	}
	return f.Close()
}
