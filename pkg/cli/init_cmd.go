package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/urfave/cli/v2"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/logging"
	"github.com/escale-sync/escale/pkg/storage"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "set up a repository: an interactive wizard, or flags for scripts (--non-interactive)",
		Description: "Asks for the repository name, the local folder, the relay (a remote of rclone.conf, a new\n" +
			"FTP/SFTP/WebDAV/S3 remote, or a local folder), this client's name, the key, the mode, the\n" +
			"puller count and the quota; `?` at a prompt explains the question. It writes a commented TOML\n" +
			"to --config (default ~/.config/escale/escale.toml), or adds the repository to that file when it\n" +
			"exists. Passwords of new remotes go to rclone.conf (obscured), never to escale's file.\n\n" +
			"For scripts: escale init --non-interactive --repo NAME --path DIR --relay SPEC --client NAME\n" +
			"  [--passphrase-file F | --key-file F | --generate-passphrase] [--mode M] [--pullers N] [--quota SIZE]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "non-interactive", Aliases: []string{"y"}, Usage: "ask nothing: take every answer from the flags"},
			&cli.StringFlag{Name: "repo", Usage: "repository `NAME` (letters, digits, - and _)"},
			&cli.StringFlag{Name: "path", Usage: "the local `FOLDER` to sync (it must exist)"},
			&cli.StringFlag{Name: "relay", Usage: "the relay: `REMOTE:PATH` of rclone.conf, an inline remote :type,opt=value:path, or a local folder"},
			&cli.StringFlag{Name: "client", Usage: "this client's `NAME` in the repository (default: the host name)"},
			&cli.StringFlag{Name: "passphrase-file", Usage: "use the passphrase in `FILE` (its first line)"},
			&cli.StringFlag{Name: "key-file", Usage: "use the age identity in `FILE` (age-keygen output)"},
			&cli.BoolFlag{Name: "generate-passphrase", Usage: "generate a passphrase into NAME.passphrase next to the configuration (mode 0600)"},
			&cli.BoolFlag{Name: "no-encryption", Usage: "store files on the relay unencrypted (encryption = \"none\")"},
			&cli.StringFlag{Name: "mode", Value: string(config.ModeShared), Usage: "shared, upload, download or conservative"},
			&cli.IntFlag{Name: "pullers", Usage: "how many pullers must fetch an update before it leaves the relay (0: every registered puller)"},
			&cli.StringFlag{Name: "quota", Usage: "most bytes escale may keep on the relay, e.g. 2GB (default: none)"},
			&cli.StringFlag{Name: "rclone-config", Usage: "rclone.conf `FILE` to list and create remotes in (written to the configuration as rclone_config)"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing configuration file (the old one is kept as .bak)"},
		},
		Action: runInit,
	}
}

// initPlan is one repository's answers, what `escale init` writes.
type initPlan struct {
	Repo, Path, Relay, Client string
	Mode                      string
	Pullers                   int
	Quota                     string // as typed; "" = none
	NoEncryption              bool
	PassphraseFile, KeyFile   string
	// Generate makes a new passphrase into PassphraseFile before the
	// configuration is written.
	Generate     bool
	RcloneConfig string
}

// initTarget is the configuration file init writes, and what it holds now.
type initTarget struct {
	path     string
	existing []byte // nil when the file does not exist
	repos    map[string]bool
	force    bool
}

func runInit(c *cli.Context) error {
	t, err := initTargetOf(c)
	if err != nil {
		return withCode(ExitError, err)
	}
	rcloneConf := c.String("rclone-config")
	var plan *initPlan
	var wiz *wizard
	if c.Bool("non-interactive") {
		plan, err = planFromFlags(c, t)
	} else {
		// The wizard lists and creates remotes; rclone's chatter (such as
		// "config file not found") would interleave with the questions.
		level := "warn"
		if l := c.String("log-level"); l != "" {
			level = l
		}
		log, closeLog, lerr := logging.New(logging.Options{Level: level, Format: c.String("log-format"), Stderr: c.App.ErrWriter})
		if lerr != nil {
			return withCode(ExitError, lerr)
		}
		defer closeLog()
		if err := storage.Init(storage.Options{RcloneConfig: rcloneConf, Logger: log}); err != nil {
			return withCode(ExitError, err)
		}
		wiz = newWizard(c, t)
		plan, err = wiz.run()
	}
	if err != nil {
		return withCode(ExitError, err)
	}
	plan.RcloneConfig = rcloneConf
	cfg, err := writeInit(c, t, plan)
	if err != nil {
		return withCode(ExitError, err)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "wrote %s (repository %s)\n", t.path, plan.Repo)
	if wiz != nil {
		if err := wiz.offerRelayTest(cfg.Relay); err != nil {
			return withCode(ExitError, err)
		}
	}
	printNextSteps(w, t.path, plan)
	return nil
}

// initTargetOf finds the file to write: --config ($ESCALE_CONFIG), else the
// first default search path.
func initTargetOf(c *cli.Context) (*initTarget, error) {
	path := c.String("config")
	if path == "" {
		paths := config.SearchPaths(config.LoadOptions{})
		if len(paths) == 0 {
			return nil, errors.New("no default place for the configuration: give --config FILE")
		}
		path = paths[0]
	}
	abs, err := filepath.Abs(expandHome(path))
	if err != nil {
		return nil, fmt.Errorf("configuration file %s: %w", path, err)
	}
	t := &initTarget{path: abs, repos: map[string]bool{}, force: c.Bool("force")}
	data, err := os.ReadFile(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return t, nil
	case err != nil:
		return nil, fmt.Errorf("read the configuration: %w", err)
	}
	if t.force {
		return t, nil // replaced whole: what it holds does not matter
	}
	var doc struct {
		Repository map[string]any `toml:"repository"`
	}
	if err := toml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s exists but is not valid TOML (%v); fix it, choose another --config file, or add --force to replace it", abs, err)
	}
	t.existing = data
	for name := range doc.Repository {
		t.repos[name] = true
	}
	return t, nil
}

// expandHome turns a leading "~/" into the home folder.
func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// repoNameRE is what config accepts as a [repository.NAME].
var repoNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (t *initTarget) checkRepoName(name string) error {
	switch {
	case name == "":
		return errors.New("the repository needs a name, e.g. documents")
	case !repoNameRE.MatchString(name):
		return fmt.Errorf("%q: use only letters, digits, - and _", name)
	case t.repos[name]:
		return fmt.Errorf("%s already has [repository.%s]; choose another name, or add --force to replace the whole file", t.path, name)
	}
	return nil
}

// defaultPassphraseFile is where a generated passphrase goes: next to the
// configuration, named after the repository.
func (t *initTarget) defaultPassphraseFile(repo string) string {
	return filepath.Join(filepath.Dir(t.path), repo+".passphrase")
}

func planFromFlags(c *cli.Context, t *initTarget) (*initPlan, error) {
	var missing []string
	for _, f := range []string{"repo", "path", "relay", "client"} {
		if strings.TrimSpace(c.String(f)) == "" {
			missing = append(missing, "--"+f)
		}
	}
	keys := 0
	for _, f := range []string{"passphrase-file", "key-file"} {
		if c.String(f) != "" {
			keys++
		}
	}
	for _, f := range []string{"generate-passphrase", "no-encryption"} {
		if c.Bool(f) {
			keys++
		}
	}
	if keys == 0 {
		missing = append(missing, "one of --passphrase-file, --key-file, --generate-passphrase")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("--non-interactive needs %s", strings.Join(missing, ", "))
	}
	if keys > 1 {
		return nil, errors.New("give only one of --passphrase-file, --key-file, --generate-passphrase and --no-encryption")
	}
	p := &initPlan{
		Repo: c.String("repo"), Path: c.String("path"), Relay: c.String("relay"), Client: c.String("client"),
		Mode: c.String("mode"), Pullers: c.Int("pullers"), Quota: c.String("quota"),
		NoEncryption: c.Bool("no-encryption"), PassphraseFile: c.String("passphrase-file"), KeyFile: c.String("key-file"),
		Generate: c.Bool("generate-passphrase"),
	}
	if err := t.checkRepoName(p.Repo); err != nil {
		return nil, fmt.Errorf("--repo %w", err)
	}
	if st, err := os.Stat(expandHome(p.Path)); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("--path %s is not a folder; create it first (mkdir -p %s) or fix the path", p.Path, p.Path)
	}
	if err := checkMode(p.Mode); err != nil {
		return nil, fmt.Errorf("--mode %w", err)
	}
	if p.Pullers < 0 {
		return nil, fmt.Errorf("--pullers %d: give 0 (every registered puller) or more", p.Pullers)
	}
	if p.Quota != "" {
		if _, err := parseQuota(p.Quota); err != nil {
			return nil, fmt.Errorf("--quota %w", err)
		}
	}
	for _, f := range []struct{ flag, path string }{{"--passphrase-file", p.PassphraseFile}, {"--key-file", p.KeyFile}} {
		if f.path == "" {
			continue
		}
		if st, err := os.Stat(expandHome(f.path)); err != nil || !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s %s is not a file; give the file that holds the key", f.flag, f.path)
		}
	}
	if p.Generate {
		p.PassphraseFile = t.defaultPassphraseFile(p.Repo)
		if _, err := os.Stat(p.PassphraseFile); err == nil {
			return nil, fmt.Errorf("%s exists; use it with --passphrase-file %s, or move it away", p.PassphraseFile, p.PassphraseFile)
		}
	}
	return p, nil
}

func checkMode(m string) error {
	switch config.Mode(m) {
	case config.ModeShared, config.ModeUpload, config.ModeDownload, config.ModeConservative:
		return nil
	}
	return fmt.Errorf("%q is not a mode; choose shared, upload, download or conservative", m)
}

func parseQuota(s string) (int64, error) {
	n, err := config.ParseSize(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: write a number with a unit, e.g. 500MB, 2GB, 1.5GiB or 10GiB (KB MB GB TB are powers of 1000, KiB MiB GiB TiB of 1024)", s)
	}
	if n < 0 {
		return 0, fmt.Errorf("%q: a quota cannot be negative", s)
	}
	return n, nil
}

// writeInit normalises the plan (relative paths are taken from the current
// folder, not the configuration's), checks the result loads as escale would
// load it, generates the passphrase, and writes the file atomically.
func writeInit(c *cli.Context, t *initTarget, p *initPlan) (*config.Repository, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	// A first pass from the current folder makes every path absolute.
	draft := renderRepo(p)
	cfg, err := config.Parse(filepath.Join(cwd, "escale-init.toml"), draft, config.LoadOptions{})
	if err != nil {
		return nil, describeConfigError(err)
	}
	r := cfg.Repositories[0]
	p.Path, p.Relay, p.Client = r.Path, r.Relay, r.Client
	p.PassphraseFile, p.KeyFile = r.PassphraseFile, r.KeyFile

	var out []byte
	if t.existing != nil {
		out = append(out, t.existing...)
		if len(out) > 0 && !bytes.HasSuffix(out, []byte("\n")) {
			out = append(out, '\n')
		}
		out = append(out, '\n')
		out = append(out, renderRepo(p)...)
	} else {
		out = append(renderHeader(p), renderRepo(p)...)
	}
	final, err := config.Parse(t.path, out, config.LoadOptions{})
	if err != nil {
		return nil, describeConfigError(err)
	}
	var repo *config.Repository
	for i := range final.Repositories {
		if final.Repositories[i].Name == p.Repo {
			repo = &final.Repositories[i]
		}
	}
	if p.Generate {
		pass, err := generatePassphrase()
		if err != nil {
			return nil, err
		}
		if err := writeSecretFile(p.PassphraseFile, []byte(pass+"\n")); err != nil {
			return nil, err
		}
		fmt.Fprintf(c.App.Writer, "wrote a new passphrase to %s (mode 0600): copy it to every other client of %s, and keep a copy somewhere safe\n", p.PassphraseFile, p.Repo)
	}
	if err := os.MkdirAll(filepath.Dir(t.path), 0o755); err != nil {
		return nil, fmt.Errorf("create the configuration folder: %w", err)
	}
	if t.force {
		if old, err := os.ReadFile(t.path); err == nil {
			if err := os.WriteFile(t.path+".bak", old, 0o600); err != nil {
				return nil, fmt.Errorf("keep the old configuration as %s.bak: %w", t.path, err)
			}
			fmt.Fprintf(c.App.Writer, "kept the old configuration as %s.bak\n", t.path)
		}
	}
	if err := atomicWrite(t.path, out, 0o644); err != nil {
		return nil, err
	}
	return repo, nil
}

// describeConfigError turns a configuration that would not load into one
// error listing every problem.
func describeConfigError(err error) error {
	var ve *config.ValidationError
	if errors.As(err, &ve) {
		lines := make([]string, len(ve.Problems))
		for i, p := range ve.Problems {
			lines[i] = p.Msg
			if p.Key != "" {
				lines[i] = p.Key + ": " + p.Msg
			}
		}
		return fmt.Errorf("these answers make a configuration escale would refuse; nothing was written:\n  %s",
			strings.Join(lines, "\n  "))
	}
	return err
}

// atomicWrite replaces path with data through a synced temporary file in the
// same folder: a crash leaves the old file or the new one, never half.
func atomicWrite(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, perm)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// renderHeader is the top of a new file: what it is, and the global keys
// left at their defaults, commented out.
func renderHeader(p *initPlan) []byte {
	var b bytes.Buffer
	b.WriteString(`# escale configuration, written by ` + "`escale init`" + `.
# Check it with ` + "`escale config check`" + `; the README's "Configuration" section lists every key.
# Relative paths are taken from this file's folder; "~/" is the home folder.

# Global settings (the defaults, commented out):
# state_dir = "~/.local/state/escale"   # local state and the trash of replaced files
# log_file = ""                         # "" = standard error (the journal under systemd)
# log_level = "info"                    # debug, info, warn or error
# metrics_address = ""                  # e.g. "127.0.0.1:9111" to serve Prometheus metrics
`)
	if p.RcloneConfig != "" {
		abs, err := filepath.Abs(p.RcloneConfig)
		if err != nil {
			abs = p.RcloneConfig
		}
		b.WriteString("# The rclone.conf holding the relay's remote.\nrclone_config = " + config.QuoteTOML(abs) + "\n")
	} else {
		b.WriteString("# rclone_config = \"\"                    # \"\" = the rclone.conf rclone itself uses\n")
	}
	b.WriteString("\n")
	return b.Bytes()
}

// renderRepo writes one commented [repository.NAME] table.
func renderRepo(p *initPlan) []byte {
	var b bytes.Buffer
	line := func(comment, kv string) {
		for _, l := range strings.Split(comment, "\n") {
			b.WriteString("# " + l + "\n")
		}
		b.WriteString(kv + "\n")
	}
	fmt.Fprintf(&b, "[repository.%s]\n", p.Repo)
	line("The local folder kept in sync.", "path = "+config.QuoteTOML(p.Path))
	line("Where the encrypted data travels through: a remote of rclone.conf \"name:path\",\nan inline remote \":type,opt=value:path\", or a local folder.", "relay = "+config.QuoteTOML(p.Relay))
	line("This machine's name in the repository; unique among its clients.", "client = "+config.QuoteTOML(p.Client))
	line("shared: push and pull; upload: push only; download: pull only;\nconservative: push, and pull only files not changed here since the last pull.", "mode = "+config.QuoteTOML(p.Mode))
	if p.Pullers > 0 {
		line("How many pullers must fetch an update before its data leaves the relay.", "pullers = "+strconv.Itoa(p.Pullers))
	} else {
		line("How many pullers must fetch an update before its data leaves the relay;\nunset = every registered client that pulls, except the pusher.", "# pullers = 1")
	}
	if p.Quota != "" {
		line("The most bytes escale keeps on the relay; pushes wait when it is full.", "quota = "+config.QuoteTOML(strings.TrimSpace(p.Quota)))
	} else {
		line("The most bytes escale keeps on the relay (KB MB GB, KiB MiB GiB); unset = no quota.", "# quota = \"2GB\"")
	}
	switch {
	case p.NoEncryption:
		line("No encryption: whoever can read the relay reads the files.", `encryption = "none"`)
	case p.KeyFile != "":
		line("The repository key opens with this age identity (it never leaves this machine).", "key_file = "+config.QuoteTOML(p.KeyFile))
	default:
		line("The repository key opens with the passphrase in this file (its first line).\nEvery client of the repository needs the same passphrase; keep a copy somewhere safe.", "passphrase_file = "+config.QuoteTOML(p.PassphraseFile))
	}
	b.WriteString("# Filters, polling and more: see the README's \"Configuration\" section.\n")
	return b.Bytes()
}

func printNextSteps(w interface{ Write([]byte) (int, error) }, cfgPath string, p *initPlan) {
	flag := ""
	if def := config.SearchPaths(config.LoadOptions{}); len(def) == 0 || def[0] != cfgPath {
		flag = " --config " + shellQuote(cfgPath)
	}
	fmt.Fprintf(w, "\nNext:\n")
	fmt.Fprintf(w, "  escale%s config check        # review the effective settings\n", flag)
	fmt.Fprintf(w, "  escale%s relay test %s\n", flag, shellQuote(p.Relay))
	fmt.Fprintf(w, "  escale%s sync --once         # one round now; the first client creates the repository on the relay\n", flag)
	fmt.Fprintf(w, "  systemctl --user enable --now escale   # then keep it running (configs/systemd/escale.service)\n")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
