package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/logging"
	"github.com/escale-sync/escale/pkg/storage"
)

// env is what a command that touches relays needs: the configuration, the
// logger, and rclone initialised with the right rclone.conf.
type env struct {
	cfg   *config.Config
	log   *slog.Logger
	close func() error
}

// setup loads the configuration (required unless optional), builds the
// logger and initialises the storage layer.
func setup(c *cli.Context, optional bool) (*env, error) {
	cfg, err := loadConfig(c)
	var nf *config.NotFoundError
	switch {
	case err == nil:
	case optional && errors.As(err, &nf) && !nf.Explicit:
		cfg = &config.Config{LogLevel: "info"}
	default:
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				fmt.Fprintln(c.App.ErrWriter, p)
			}
			return nil, withCode(ExitError, errors.New("the configuration has problems; `escale config check` lists them"))
		}
		return nil, withCode(ExitError, err)
	}
	level := cfg.LogLevel
	if l := c.String("log-level"); l != "" {
		level = l
	}
	lo := logging.Options{Level: level, Format: c.String("log-format"), File: cfg.LogFile, Stderr: c.App.ErrWriter}
	if cfg.LogRotate.Size > 0 {
		lo.MaxSizeMB = int(max(1, cfg.LogRotate.Size/1_000_000))
		lo.MaxBackups = cfg.LogRotate.Keep
		lo.MaxAgeDays = int(cfg.LogRotate.MaxAge.Hours() / 24)
		lo.Compress = cfg.LogRotate.Compress
	}
	log, closeLog, err := logging.New(lo)
	if err != nil {
		return nil, withCode(ExitError, err)
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	rcloneConf := cfg.RcloneConfig
	if c.IsSet("rclone-config") {
		rcloneConf = c.String("rclone-config")
	}
	if err := storage.Init(storage.Options{RcloneConfig: rcloneConf, Logger: log}); err != nil {
		closeLog()
		return nil, withCode(ExitError, err)
	}
	return &env{cfg: cfg, log: log, close: closeLog}, nil
}

// stdinTTY is the terminal to prompt on, nil when standard input is not one.
func stdinTTY(c *cli.Context) *os.File {
	if f, ok := c.App.Reader.(*os.File); ok {
		return f
	}
	return nil
}
