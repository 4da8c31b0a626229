package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/engine"
	"github.com/escale-sync/escale/pkg/state"
)

func accessCommand() *cli.Command {
	return &cli.Command{
		Name:      "access",
		Usage:     "show or set what escale may do with a file: r- never push it, w- never overwrite it",
		ArgsUsage: "FILE [MODIFIERS]",
		Description: "MODIFIERS are r+ r- w+ w- (combinable: \"r-w-\"). r- keeps local changes of FILE here;\n" +
			"w- keeps other clients' changes out of FILE. They are local to this machine.\n" +
			"With --list, prints every file with modifiers. Stop `escale sync` for the repository first.",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "list", Usage: "list every file with modifiers"}},
		Action: func(c *cli.Context) error {
			cfg, err := loadConfig(c)
			if err != nil {
				return withCode(ExitError, err)
			}
			if c.Bool("list") {
				return accessList(c, cfg)
			}
			if c.NArg() < 1 || c.NArg() > 2 {
				return withCode(ExitError, errors.New("usage: escale access FILE [MODIFIERS]"))
			}
			repo, rel, err := repoOf(cfg, c.Args().Get(0))
			if err != nil {
				return withCode(ExitError, err)
			}
			db, err := state.Open(filepath.Join(cfg.StateDir, repo.Name, "state.db"))
			if err != nil {
				return withCode(ExitError, err)
			}
			defer db.Close()
			a, err := engine.GetAccess(db, rel)
			if err != nil {
				return withCode(ExitError, err)
			}
			if c.NArg() == 2 {
				if a, err = engine.ParseModifiers(a, c.Args().Get(1)); err != nil {
					return withCode(ExitError, err)
				}
				if err := engine.SetAccess(db, rel, a); err != nil {
					return withCode(ExitError, err)
				}
			}
			fmt.Fprintf(c.App.Writer, "%s\t%s (repository %s)\n", a, rel, repo.Name)
			return nil
		},
	}
}

// repoOf finds the repository whose folder holds file.
func repoOf(cfg *config.Config, file string) (*config.Repository, string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, "", err
	}
	for i := range cfg.Repositories {
		r := &cfg.Repositories[i]
		rel, err := filepath.Rel(r.Path, abs)
		if err == nil && rel != "." && !strings.HasPrefix(rel, "..") && !filepath.IsAbs(rel) {
			return r, filepath.ToSlash(rel), nil
		}
	}
	return nil, "", fmt.Errorf("%s is in no repository folder of %s", abs, cfg.File)
}

func accessList(c *cli.Context, cfg *config.Config) error {
	for i := range cfg.Repositories {
		r := &cfg.Repositories[i]
		db, err := state.Open(filepath.Join(cfg.StateDir, r.Name, "state.db"))
		if err != nil {
			return withCode(ExitError, err)
		}
		all, paths, err := engine.ListAccess(db)
		db.Close()
		if err != nil {
			return withCode(ExitError, err)
		}
		for _, p := range paths {
			fmt.Fprintf(c.App.Writer, "%s\t%s (repository %s)\n", all[p], p, r.Name)
		}
	}
	return nil
}
