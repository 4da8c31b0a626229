package storage

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"sync"

	// Every backend, so any remote in a user's rclone.conf works.
	_ "github.com/rclone/rclone/backend/all"
	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/cache"
	"github.com/rclone/rclone/fs/config"
	"github.com/rclone/rclone/fs/config/configfile"
	"github.com/rclone/rclone/lib/atexit"
	"github.com/rclone/rclone/librclone/librclone"
)

// Options for Init.
type Options struct {
	// RcloneConfig is the rclone.conf to use. "" means the file rclone itself
	// would use: $RCLONE_CONFIG if set (rclone only reads that variable in its
	// CLI, so escale honours it here), else rclone's default search
	// (~/.config/rclone/rclone.conf, ...).
	RcloneConfig string
	// Logger receives rclone's log output. nil means slog.Default() at the
	// time of each message.
	Logger *slog.Logger
}

// rclone's configuration and logger are process-global, so this state is too.
var (
	initMu      sync.Mutex
	initialized bool
	initErr     error  // the last Init's failure: Open and the RPCs refuse until a good Init
	defaultPath string // rclone's default config path, captured before we change it
	bridge      = newLogBridge()
)

// Init sets rclone up for escale: the config file, the logger, rclone's global
// options. It is idempotent; a later call with another RcloneConfig re-points
// rclone at that file (and drops cached backends built from the old one), and
// a later Logger replaces the earlier one. Open calls Init(Options{}) itself
// when nothing called Init before.
func Init(opts Options) error {
	initMu.Lock()
	defer initMu.Unlock()
	return initLocked(opts)
}

func initLocked(opts Options) error {
	if !initialized {
		defaultPath = config.GetConfigPath()
	}
	path := opts.RcloneConfig
	if path == "" {
		path = os.Getenv("RCLONE_CONFIG")
	}
	if path == "" {
		path = defaultPath
	}
	bridge.setTarget(opts.Logger)
	ci := fs.GetConfig(context.Background())
	// rclone reads these globals from its own goroutines without locks:
	// write them only when they change (a repeated Init in tests or a
	// reload must not race with a transfer in flight).
	if level := rcloneLogLevel(opts.Logger); ci.LogLevel != level {
		ci.LogLevel = level
	}
	// A daemon has no terminal: an encrypted rclone.conf needs RCLONE_CONFIG_PASS
	// or a password command, never a prompt.
	if ci.AskPassword {
		ci.AskPassword = false
	}

	if err := config.SetConfigPath(path); err != nil {
		initErr = fmt.Errorf("rclone config path %q: %w", path, err)
		return initErr
	}
	if !initialized {
		initializeRclone()
		initialized = true
	} else {
		configfile.Install()
		cache.Clear() // backends built from the previous file must not be reused
	}
	initErr = loadConfig()
	return initErr
}

// initializeRclone runs librclone.Initialize, which takes over the process's
// default slog logger and the standard log package; escale's are put back.
func initializeRclone() {
	prevDefault := slog.Default()
	prevLogLevel := slog.SetLogLoggerLevel(slog.LevelInfo)
	slog.SetLogLoggerLevel(prevLogLevel)
	prevWriter, prevFlags, prevPrefix := log.Writer(), log.Flags(), log.Prefix()

	librclone.Initialize()
	// rclone's own SIGINT/SIGTERM handler (installed on its first copy)
	// would os.Exit(143) in the middle of a transfer; escale stops cleanly.
	atexit.IgnoreSignals()

	fs.SetLogger(bridge)
	slog.SetDefault(prevDefault)
	slog.SetLogLoggerLevel(prevLogLevel)
	log.SetOutput(prevWriter)
	log.SetFlags(prevFlags)
	log.SetPrefix(prevPrefix)
}

// loadConfig reads the config file now, so a broken or undecryptable file is
// an error here: later, rclone would call os.Exit on it.
func loadConfig() error {
	path := config.GetConfigPath()
	if path == "" {
		config.LoadedData()
		return nil
	}
	err := config.Data().Load()
	if err != nil && !errors.Is(err, config.ErrorConfigFileNotFound) {
		return fmt.Errorf("cannot read rclone config file %s: %w (fix the file, or for an encrypted one set RCLONE_CONFIG_PASS)", path, err)
	}
	config.LoadedData()
	return nil
}

// ensureInit runs Init(Options{}) when nothing did, and reports a failed Init.
func ensureInit() error {
	initMu.Lock()
	defer initMu.Unlock()
	if !initialized {
		return initLocked(Options{})
	}
	return initErr
}

// RcloneVersion is the version of the embedded rclone.
func RcloneVersion() string { return fs.Version }

// ConfigPath is the rclone.conf in use; "" when rclone's config is in memory only.
func ConfigPath() string {
	initMu.Lock()
	defer initMu.Unlock()
	return config.GetConfigPath()
}

// configFileName describes the config file for error messages.
func configFileName() string {
	if p := config.GetConfigPath(); p != "" {
		return p
	}
	return "(none: rclone's config is in memory only)"
}
