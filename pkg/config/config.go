// Package config loads escale's TOML configuration: it finds the file,
// applies ESCALE_<KEY> environment overrides and defaults, and checks every
// value, reporting all problems at once with the file, the key and what is
// expected (INTERFACE.md, "Configuration").
//
// # File layout
//
// Global keys sit at the top of the file; each repository is a table
// [repository.NAME]. Repository keys written at the top level, before any
// table, are defaults inherited by every repository (as the original
// escale's [DEFAULT] section was), except path and relay, which name one
// repository's folders and so are only accepted inside its table. A key set
// in a repository's table overrides the inherited one.
//
// ESCALE_<KEY> environment variables (ESCALE_STATE_DIR, ESCALE_LOG_LEVEL, …)
// override the global keys; an empty one is ignored. Repository keys cannot
// be set this way, and ESCALE_CONFIG and ESCALE_PASSPHRASE are not keys.
//
// Relative paths in the file (path, passphrase_file, key_file, state_dir,
// rclone_config, log_file and a local relay) are taken from the
// configuration file's folder; "~/" is the home folder.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

// Config is a loaded, checked configuration with every default filled in.
type Config struct {
	// File is the configuration file loaded, as an absolute path ("" if none).
	File string `json:"file"`
	// StateDir holds local state and the trash. Default
	// $XDG_STATE_HOME/escale (~/.local/state/escale); on Windows
	// %LocalAppData%\escale.
	StateDir string `json:"state_dir"`
	// RcloneConfig is the rclone.conf to read remotes from; "" means the
	// file rclone itself would use.
	RcloneConfig string `json:"rclone_config"`
	// LogFile is where logs go; "" means standard error.
	LogFile string `json:"log_file"`
	// LogLevel is debug, info, warn or error; default info.
	LogLevel string `json:"log_level"`
	// LogRotate says when LogFile is rotated.
	LogRotate LogRotate `json:"log_rotate"`
	// MetricsAddress is the host:port that serves Prometheus metrics; "" = off.
	MetricsAddress string `json:"metrics_address"`
	// SMTPServer is the host:port mail to a repository's maintainer goes
	// through; default localhost:25 (a local MTA, as the original used).
	// Port 465 means implicit TLS; otherwise STARTTLS is used when offered.
	SMTPServer string `json:"smtp_server"`
	// SMTPFrom is the sender of alert mail; default escale@<host name>.
	SMTPFrom string `json:"smtp_from"`
	// SMTPUser and SMTPPasswordFile authenticate to SMTPServer; both or
	// neither. The password file's first line is the password.
	SMTPUser         string `json:"smtp_user,omitempty"`
	SMTPPasswordFile string `json:"smtp_password_file,omitempty"`
	// Settle: a file changed less than this long ago waits for a later
	// round (a program may be writing it); 0 pushes at once.
	Settle time.Duration `json:"-"`
	// AlertInterval is the least time between two mails about one
	// repository; default 1h; 0 = no limit.
	AlertInterval time.Duration `json:"-"`
	// Repositories are the [repository.NAME] tables, sorted by name.
	Repositories []Repository `json:"repositories"`
	// Warnings are doubts that do not stop escale, such as an ESCALE_
	// variable that looks like a misspelt key.
	Warnings []string `json:"warnings,omitempty"`

	origin map[string]string
}

// LogRotate says when the log file is rotated. In TOML it is either a size
// (log_rotate = "10MB": rotate at that size, other fields default), false
// (never rotate, e.g. when logrotate(8) does it), or a table:
//
//	log_rotate = { size = "10MB", keep = 5, max_age = "30d", compress = true }
type LogRotate struct {
	// Size is the size at which the file is rotated; 0 = never rotate.
	// Default 10MB; at least 100KB.
	Size int64 `json:"size"`
	// Keep is how many rotated files are kept; default 5.
	Keep int `json:"keep"`
	// MaxAge removes rotated files older than this; 0 = no age limit (default).
	MaxAge time.Duration `json:"-"`
	// Compress gzips rotated files; default false.
	Compress bool `json:"compress"`
}

// Mode is a repository's synchronisation mode.
type Mode string

// The synchronisation modes (PROTOCOL.md, "Modes").
const (
	ModeShared       Mode = "shared"       // push and pull
	ModeUpload       Mode = "upload"       // push only; never writes locally
	ModeDownload     Mode = "download"     // pull only; never pushes
	ModeConservative Mode = "conservative" // push; pull only files not modified locally since the last pull
)

// Encryption schemes.
const (
	EncryptionAge  = "age"
	EncryptionNone = "none"
)

// IndexSpec is the paging of the relay index.
type IndexSpec struct {
	// Kind is "topdir" (one page per first N directory levels), "hash" (N
	// hash buckets) or "" (escale chooses).
	Kind string `json:"kind"`
	// N is the depth for topdir (default 1) or the bucket count for hash
	// (0 = escale chooses).
	N int `json:"n"`
}

// String writes the spec as written in the file: "topdir:2", "hash:64",
// "hash" or "auto".
func (s IndexSpec) String() string {
	switch {
	case s.Kind == "":
		return "auto"
	case s.N == 0:
		return s.Kind
	default:
		return fmt.Sprintf("%s:%d", s.Kind, s.N)
	}
}

// Repository is one [repository.NAME] table with defaults filled in.
type Repository struct {
	// Name is the table name: letters, digits, "-" and "_" only.
	Name string `json:"name"`
	// Path is the local folder, absolute and cleaned.
	Path string `json:"path"`
	// Relay is "remote:path", an inline remote ":type,opt=value:path", or a
	// local folder (made absolute).
	Relay string `json:"relay"`
	// Client is this client's name in the repository; default the host name
	// with characters other than letters, digits and "-_." replaced by "-".
	Client string `json:"client"`
	// Mode is the synchronisation mode; default shared.
	Mode Mode `json:"mode"`
	// Pullers is how many pullers must fetch an update before its data
	// leaves the relay; 0 = every registered client that pulls, except the pusher.
	Pullers int `json:"pullers"`
	// PullerTimeout is how long an unseen puller pins relay data; default 30d.
	PullerTimeout time.Duration `json:"-"`
	// Quota is the most bytes escale keeps on the relay; 0 = no quota.
	Quota int64 `json:"quota"`
	// Encryption is "age" (default) or "none".
	Encryption string `json:"encryption"`
	// PassphraseFile holds the repository passphrase; KeyFile an age
	// identity. At most one is set; see KeySource for the run-time choice.
	PassphraseFile string `json:"passphrase_file,omitempty"`
	KeyFile        string `json:"key_file,omitempty"`
	// Index is the relay index paging.
	Index IndexSpec `json:"-"`
	// MaxPackSize is the largest pack of small files; default DefaultMaxPackSize.
	MaxPackSize int64 `json:"max_pack_size"`
	// Filters: globs, or /regex/ (between slashes). Extensions are stored
	// without a leading dot.
	Include     []string `json:"include"`
	Exclude     []string `json:"exclude"`
	IncludeDirs []string `json:"include_dirs"`
	ExcludeDirs []string `json:"exclude_dirs"`
	Extensions  []string `json:"extensions"`
	// MinPoll is the polling interval while busy, MaxPoll the ceiling while
	// idle; LockTimeout the age after which an unrefreshed lock is cleared.
	MinPoll     time.Duration `json:"-"`
	MaxPoll     time.Duration `json:"-"`
	LockTimeout time.Duration `json:"-"`
	// MaxDelete is the percentage of files one round may delete before it
	// stops and asks (0..100; 100 turns the guard off); default 50.
	MaxDelete int `json:"max_delete"`
	// OnError is a shell command run when the repository starts failing,
	// when its error changes, and when it recovers; "" = none.
	OnError string `json:"on_error,omitempty"`
	// Maintainer is the address (or comma-separated addresses) mailed on
	// the same events; "" = no mail.
	Maintainer string `json:"maintainer,omitempty"`

	origin map[string]string
}

// Defaults for the settings "chosen by escale".
const (
	// DefaultMaxPackSize: packs exist to hide per-file sizes and to save
	// requests on slow backends (one PUT per pack instead of per file).
	// 16 MiB holds thousands of typical small files, yet a pack that fails
	// mid-upload on a flaky FTP or WebDAV link is cheap to resend, it stays
	// far below every backend's object-size cap, and a puller can hold a
	// pack's index in memory without thinking about it.
	DefaultMaxPackSize = 16 << 20
	// DefaultMinPoll and DefaultMaxPoll bound relay polling: an idle poll
	// costs one LIST, so 5 minutes idle is cheap yet not slow to notice.
	DefaultMinPoll = 5 * time.Second
	DefaultMaxPoll = 5 * time.Minute
	// DefaultLockTimeout: admin locks are refreshed far more often than
	// this, so 10 minutes only delays recovery from a crashed holder.
	DefaultLockTimeout   = 10 * time.Minute
	DefaultPullerTimeout = 30 * 24 * time.Hour
	DefaultMaxDelete     = 50
	DefaultLogLevel      = "info"
	DefaultLogRotateSize = 10_000_000
	DefaultLogRotateKeep = 5
	// DefaultSMTPServer is a local MTA, as the original escale assumed.
	DefaultSMTPServer = "localhost:25"
	// DefaultAlertInterval: a failing repository mails at most once an
	// hour, so a flapping relay does not flood the maintainer.
	DefaultAlertInterval = time.Hour
	// DefaultSettle: a file must have been still this long to be pushed.
	DefaultSettle = time.Second
)

// LoadOptions are the inputs of the configuration search, injectable so
// tests never read the real user's files or environment.
type LoadOptions struct {
	// Path is the file named on the command line ("" = search).
	Path string
	// Getenv reads an environment variable; nil = os.Getenv.
	Getenv func(string) string
	// Environ lists the environment as "KEY=value" strings, used only to
	// warn about misspelt ESCALE_ variables; nil = os.Environ when Getenv
	// is nil too, else no such warnings.
	Environ func() []string
	// Home is the home folder; "" = $HOME from Getenv when Getenv is
	// given, else os.UserHomeDir().
	Home string
	// Hostname gives the default client name; nil = os.Hostname.
	Hostname func() (string, error)
}

func (o LoadOptions) withDefaults() LoadOptions {
	injected := o.Getenv != nil
	if !injected {
		o.Getenv = os.Getenv
		if o.Environ == nil {
			o.Environ = os.Environ
		}
	}
	if o.Hostname == nil {
		o.Hostname = os.Hostname
	}
	// An unknown home only matters if "~" or a default under it is
	// needed; those places report it.
	switch {
	case o.Home != "":
	case injected && runtime.GOOS == "windows":
		o.Home = o.Getenv("USERPROFILE")
	case injected:
		// Take it from the injected environment, so a test that sets
		// only Getenv still never reaches the real user's files.
		o.Home = o.Getenv("HOME")
	default:
		o.Home, _ = os.UserHomeDir()
	}
	return o
}

// SearchPaths lists where Load looks for a configuration file when none is
// named, in order: $XDG_CONFIG_HOME/escale/escale.toml (default
// ~/.config/escale/escale.toml), then /etc/escale/escale.toml. On Windows:
// %AppData%\escale\escale.toml, then %ProgramData%\escale\escale.toml.
func SearchPaths(opts LoadOptions) []string {
	opts = opts.withDefaults()
	if runtime.GOOS == "windows" {
		var paths []string
		for _, v := range []string{"AppData", "ProgramData"} {
			if d := opts.Getenv(v); d != "" {
				paths = append(paths, filepath.Join(d, "escale", "escale.toml"))
			}
		}
		return paths
	}
	var paths []string
	// The XDG spec says to ignore a relative XDG_CONFIG_HOME.
	if d := opts.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		paths = append(paths, filepath.Join(d, "escale", "escale.toml"))
	} else if opts.Home != "" {
		paths = append(paths, filepath.Join(opts.Home, ".config", "escale", "escale.toml"))
	}
	return append(paths, "/etc/escale/escale.toml")
}

// Find returns the configuration file Load would read: opts.Path, else
// $ESCALE_CONFIG, else the first of SearchPaths that exists. A named file
// that does not exist is an error; escale does not fall back, because the
// user meant that file.
func Find(opts LoadOptions) (string, error) {
	opts = opts.withDefaults()
	named := opts.Path
	if named == "" {
		named = opts.Getenv("ESCALE_CONFIG")
	}
	if named != "" {
		p, err := expandPath(named, opts.Home, "")
		if err != nil {
			return "", fmt.Errorf("configuration file %s: %w", named, err)
		}
		if _, err := os.Stat(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", &NotFoundError{Searched: []string{p}, Explicit: true}
			}
			return "", fmt.Errorf("configuration file: %w", err)
		}
		return p, nil
	}
	paths := SearchPaths(opts)
	for _, p := range paths {
		_, err := os.Stat(p)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("configuration file: %w", err)
		}
	}
	return "", &NotFoundError{Searched: paths}
}

// Load finds the configuration file (see Find), reads it, applies
// ESCALE_<KEY> overrides of the global keys and defaults, and checks it.
// Problems in the file come back together as a *ValidationError; a missing
// file as a *NotFoundError.
func Load(opts LoadOptions) (*Config, error) {
	opts = opts.withDefaults()
	path, err := Find(opts)
	if err != nil {
		return nil, err
	}
	return load(path, file.Provider(path), opts)
}

// Parse reads a configuration from data as if it were the file name (used
// for relative paths and in messages), with the same overrides, defaults
// and checks as Load. It serves tests and `escale init`, which checks what
// it is about to write.
func Parse(name string, data []byte, opts LoadOptions) (*Config, error) {
	opts = opts.withDefaults()
	abs, err := filepath.Abs(name)
	if err != nil {
		return nil, fmt.Errorf("configuration %s: %w", name, err)
	}
	return load(abs, bytesProvider(data), opts)
}

// bytesProvider is a koanf.Provider over an in-memory file.
type bytesProvider []byte

func (b bytesProvider) ReadBytes() ([]byte, error) { return b, nil }
func (b bytesProvider) Read() (map[string]any, error) {
	return nil, errors.New("bytesProvider needs a parser")
}

// load runs the whole pipeline on one source.
func load(path string, src koanf.Provider, opts LoadOptions) (*Config, error) {
	d := &decoder{file: path, dir: filepath.Dir(path), opts: opts}
	raw, ok := d.readTOML(src)
	var cfg *Config
	if ok {
		cfg = d.decode(raw)
	}
	if len(d.problems) > 0 {
		return nil, &ValidationError{Problems: d.problems}
	}
	return cfg, nil
}

// Origin says where a global key's value came from: "" for the file,
// "default", or "environment ESCALE_<KEY>".
func (c *Config) Origin(key string) string { return c.origin[key] }

// Origin says where a repository key's value came from: "" for the
// repository's own table, "default", or "top level" (inherited).
func (r *Repository) Origin(key string) string { return r.origin[key] }

// Repository returns the repository called name, or nil.
func (c *Config) Repository(name string) *Repository {
	for i := range c.Repositories {
		if c.Repositories[i].Name == name {
			return &c.Repositories[i]
		}
	}
	return nil
}

// expandPath makes p absolute: "~" and "~/…" are taken from home, other
// relative paths from base ("" = the working directory).
func expandPath(p, home, base string) (string, error) {
	switch {
	case p == "~" || strings.HasPrefix(p, "~/") || strings.HasPrefix(p, `~\`):
		if home == "" {
			return "", errors.New(`cannot expand "~": the home folder is unknown; write the full path`)
		}
		p = filepath.Join(home, p[1:])
	case strings.HasPrefix(p, "~"):
		return "", fmt.Errorf(`%q: "~user" is not supported; write the full path`, p)
	case !filepath.IsAbs(p) && base != "":
		p = filepath.Join(base, p)
	}
	return filepath.Abs(p)
}
