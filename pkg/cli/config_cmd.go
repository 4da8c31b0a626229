package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/escale-sync/escale/pkg/config"
)

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "inspect the configuration",
		Subcommands: []*cli.Command{{
			Name:  "check",
			Usage: "load the configuration, report every problem, and print the effective settings",
			Description: "Exits 0 when the configuration is usable and 1 otherwise, after listing every problem on\n" +
				"standard error. Defaults are shown and marked; secrets never are (only the files that hold them).",
			Flags:  []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print the effective configuration as JSON"}},
			Action: configCheck,
		}},
	}
}

// loadConfig loads the configuration named by --config or $ESCALE_CONFIG,
// else found in the default places; every command that needs one uses it.
func loadConfig(c *cli.Context) (*config.Config, error) {
	return config.Load(config.LoadOptions{Path: c.String("config")})
}

func configCheck(c *cli.Context) error {
	stdout, stderr := c.App.Writer, c.App.ErrWriter
	cfg, err := loadConfig(c)
	var ve *config.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			fmt.Fprintln(stderr, p)
		}
		return withCode(ExitError, fmt.Errorf("%s in the configuration; fix %s and run `escale config check` again",
			plural(len(ve.Problems), "problem"), them(len(ve.Problems))))
	}
	if err != nil {
		return withCode(ExitError, err)
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	// The key source can only be checked now that the file is known: a
	// passphrase file named but missing is a problem too.
	keys := make([]config.KeySource, len(cfg.Repositories))
	var keyErrs []error
	for i := range cfg.Repositories {
		r := &cfg.Repositories[i]
		keys[i], err = r.KeySource(nil, true)
		if err != nil {
			keyErrs = append(keyErrs, err)
		}
	}
	if len(keyErrs) > 0 {
		for _, e := range keyErrs {
			fmt.Fprintf(stderr, "%s: %v\n", cfg.File, e)
		}
		return withCode(ExitError, fmt.Errorf("%s in the configuration; fix %s and run `escale config check` again",
			plural(len(keyErrs), "problem"), them(len(keyErrs))))
	}
	if c.Bool("json") {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(cfg)
	}
	return printConfig(stdout, cfg, keys)
}

// printConfig writes the effective configuration as TOML, each default or
// inherited value marked in a comment, so it can be read and pasted back.
func printConfig(w io.Writer, cfg *config.Config, keys []config.KeySource) error {
	fmt.Fprintf(w, "# configuration: %s\n", cfg.File)
	lr := cfg.LogRotate
	var s section
	s.add("state_dir", quote(cfg.StateDir), cfg.Origin("state_dir"), "")
	s.add("rclone_config", quote(cfg.RcloneConfig), cfg.Origin("rclone_config"), zeroNote(cfg.RcloneConfig == "", "rclone's own"))
	s.add("log_file", quote(cfg.LogFile), cfg.Origin("log_file"), zeroNote(cfg.LogFile == "", "standard error"))
	s.add("log_level", quote(cfg.LogLevel), cfg.Origin("log_level"), "")
	s.add("log_rotate", fmt.Sprintf("{ size = %s, keep = %d, max_age = %s, compress = %t }",
		size(lr.Size), lr.Keep, quote(config.FormatDuration(lr.MaxAge)), lr.Compress), cfg.Origin("log_rotate"), zeroNote(lr.Size == 0, "never rotated"))
	s.add("metrics_address", quote(cfg.MetricsAddress), cfg.Origin("metrics_address"), zeroNote(cfg.MetricsAddress == "", "off"))
	s.write(w)
	for i, r := range cfg.Repositories {
		fmt.Fprintf(w, "\n[repository.%s]\n", r.Name)
		idx := r.Index.String()
		var s section
		for _, e := range []struct{ key, value, zero string }{
			{"path", quote(r.Path), ""},
			{"relay", quote(r.Relay), ""},
			{"client", quote(r.Client), ""},
			{"mode", quote(string(r.Mode)), ""},
			{"pullers", strconv.Itoa(r.Pullers), zeroNote(r.Pullers == 0, "every registered puller")},
			{"puller_timeout", quote(config.FormatDuration(r.PullerTimeout)), ""},
			{"quota", size(r.Quota), zeroNote(r.Quota == 0, "none")},
			{"encryption", quote(r.Encryption), ""},
			{"passphrase_file", quote(r.PassphraseFile), zeroNote(r.PassphraseFile == "", "not set")},
			{"key_file", quote(r.KeyFile), zeroNote(r.KeyFile == "", "not set")},
			{"index", quote(idx), zeroNote(idx == "auto", "chosen by escale")},
			{"max_pack_size", size(r.MaxPackSize), ""},
			{"include", config.TOMLList(r.Include), zeroNote(len(r.Include) == 0, "every file")},
			{"exclude", config.TOMLList(r.Exclude), zeroNote(len(r.Exclude) == 0, "no file")},
			{"include_dirs", config.TOMLList(r.IncludeDirs), zeroNote(len(r.IncludeDirs) == 0, "every folder")},
			{"exclude_dirs", config.TOMLList(r.ExcludeDirs), zeroNote(len(r.ExcludeDirs) == 0, "no folder")},
			{"extensions", config.TOMLList(r.Extensions), zeroNote(len(r.Extensions) == 0, "any")},
			{"min_poll", quote(config.FormatDuration(r.MinPoll)), ""},
			{"max_poll", quote(config.FormatDuration(r.MaxPoll)), ""},
			{"lock_timeout", quote(config.FormatDuration(r.LockTimeout)), ""},
			{"max_delete", strconv.Itoa(r.MaxDelete), ""},
		} {
			s.add(e.key, e.value, r.Origin(e.key), e.zero)
		}
		s.write(w)
		fmt.Fprintf(w, "# key: %s\n", keyNote(keys[i]))
	}
	return nil
}

// section is a block of "key = value  # note" lines with aligned notes.
type section struct{ lines [][2]string }

// add records a setting; origin and zero (what an empty value means) make the note.
func (s *section) add(key, value, origin, zero string) {
	note := originNote(origin)
	if zero != "" {
		if note == "" {
			note = zero
		} else {
			note += ": " + zero
		}
	}
	s.lines = append(s.lines, [2]string{key + " = " + value, note})
}

func (s *section) write(w io.Writer) {
	width := 0
	for _, l := range s.lines {
		if l[1] != "" {
			width = max(width, len(l[0]))
		}
	}
	for _, l := range s.lines {
		if l[1] == "" {
			fmt.Fprintln(w, l[0])
		} else {
			fmt.Fprintf(w, "%-*s  # %s\n", width, l[0], l[1])
		}
	}
}

func zeroNote(isZero bool, note string) string {
	if isZero {
		return note
	}
	return ""
}

// size writes a byte count as a TOML value: 0, or a quoted size.
func size(n int64) string {
	if n == 0 {
		return "0"
	}
	return quote(config.FormatSize(n))
}

func originNote(origin string) string {
	switch {
	case origin == "top level":
		return "inherited from the top level"
	case strings.HasPrefix(origin, "environment "):
		return "from " + strings.TrimPrefix(origin, "environment ")
	}
	return origin
}

func keyNote(k config.KeySource) string {
	switch k.Kind {
	case config.KeyNone:
		return "none (no encryption)"
	case config.KeyPrompt:
		return "asked on the terminal (no passphrase_file, key_file, systemd credential or ESCALE_PASSPHRASE)"
	case config.KeyEnv:
		return "from $ESCALE_PASSPHRASE"
	}
	return k.Kind.String() + " " + k.Path
}

// quote writes s as a TOML basic string.

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func them(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// quote writes s as a TOML string (see config.QuoteTOML).
func quote(s string) string { return config.QuoteTOML(s) }
