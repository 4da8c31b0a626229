package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/escale-sync/escale/pkg/relaycheck"
	"github.com/escale-sync/escale/pkg/storage"
)

// wizard asks the questions of `escale init` on the app's streams, so a
// test drives it with a script of answers.
type wizard struct {
	c   *cli.Context
	t   *initTarget
	in  *bufio.Reader
	out io.Writer
	tty *os.File // for hidden passwords; nil when stdin is not a terminal
}

func newWizard(c *cli.Context, t *initTarget) *wizard {
	w := &wizard{c: c, t: t, in: bufio.NewReader(c.App.Reader), out: c.App.Writer}
	if f := stdinTTY(c); f != nil && term.IsTerminal(int(f.Fd())) {
		w.tty = f
	}
	return w
}

// errInputEnded: the script of answers (or the terminal) ended early.
var errInputEnded = errors.New("standard input ended before the last question; nothing was written " +
	"(for scripts, use `escale init --non-interactive` with flags)")

// question is one prompt. check normalises an answer or says what is wrong
// with it; the question is then asked again.
type question struct {
	prompt string
	def    string
	help   string
	check  func(string) (string, error)
}

func (w *wizard) readLine() (string, error) {
	return w.read(false)
}

// read reads one answer. Answers that come from a script rather than a
// terminal are echoed, so the transcript reads like a session.
func (w *wizard) read(secret bool) (string, error) {
	line, err := w.in.ReadString('\n')
	if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
		if errors.Is(err, io.EOF) {
			return "", errInputEnded
		}
		return "", err
	}
	line = strings.TrimSpace(line)
	if w.tty == nil {
		if secret && line != "" {
			fmt.Fprintln(w.out, "********")
		} else {
			fmt.Fprintln(w.out, line)
		}
	}
	return line, nil
}

func (w *wizard) ask(q question) (string, error) {
	for {
		if q.def != "" {
			fmt.Fprintf(w.out, "%s [%s]: ", q.prompt, q.def)
		} else {
			fmt.Fprintf(w.out, "%s: ", q.prompt)
		}
		a, err := w.readLine()
		if err != nil {
			fmt.Fprintln(w.out)
			return "", err
		}
		if a == "?" {
			help := q.help
			if help == "" {
				help = "No help for this one; press Enter to take the default in brackets."
			}
			fmt.Fprintln(w.out, indent(help))
			continue
		}
		if a == "" {
			a = q.def
		}
		if q.check != nil {
			v, err := q.check(a)
			if err != nil {
				fmt.Fprintf(w.out, "  %v\n", err)
				continue
			}
			a = v
		}
		return a, nil
	}
}

func (w *wizard) yes(prompt string, def bool, help string) (bool, error) {
	d := "Y/n"
	if !def {
		d = "y/N"
	}
	for {
		fmt.Fprintf(w.out, "%s [%s]: ", prompt, d)
		a, err := w.readLine()
		if err != nil {
			fmt.Fprintln(w.out)
			return false, err
		}
		switch strings.ToLower(a) {
		case "":
			return def, nil
		case "y", "yes":
			return true, nil
		case "n", "no":
			return false, nil
		case "?":
			if help != "" {
				fmt.Fprintln(w.out, indent(help))
				continue
			}
		}
		fmt.Fprintln(w.out, "  answer y or n")
	}
}

// secret reads a password, hidden when standard input is a terminal.
func (w *wizard) secret(prompt string) (string, error) {
	fmt.Fprintf(w.out, "%s: ", prompt)
	if w.tty != nil {
		b, err := term.ReadPassword(int(w.tty.Fd()))
		fmt.Fprintln(w.out)
		return string(b), err
	}
	return w.read(true)
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

func (w *wizard) run() (*initPlan, error) {
	p := &initPlan{}
	fmt.Fprintln(w.out, "escale init: set up a repository. Type ? at a question for help; Ctrl-C stops without writing anything.")
	if w.t.existing != nil {
		fmt.Fprintf(w.out, "The repository will be added to %s.\n", w.t.path)
	} else {
		fmt.Fprintf(w.out, "The configuration will be written to %s.\n", w.t.path)
	}
	var err error
	if p.Repo, err = w.ask(question{
		prompt: "Repository name", def: "main",
		help: "A short name for this synced folder, used in this file ([repository.NAME]), in logs and in\n" +
			"`--repo NAME`. Other clients may call it differently; what ties them is the relay and the key.",
		check: func(s string) (string, error) { return s, w.t.checkRepoName(s) },
	}); err != nil {
		return nil, err
	}
	if p.Path, err = w.askFolder(); err != nil {
		return nil, err
	}
	if p.Relay, err = w.askRelay(p.Repo, p.Path); err != nil {
		return nil, err
	}
	if p.Client, err = w.ask(question{
		prompt: "This client's name", def: hostClientName(),
		help: "How the other clients of the repository know this machine: shown by `escale ls` and\n" +
			"`escale status`, and used to track what each client has fetched. It must be unique in the repository.",
		check: checkClientName,
	}); err != nil {
		return nil, err
	}
	if err := w.askKey(p); err != nil {
		return nil, err
	}
	if p.Mode, err = w.ask(question{
		prompt: "Mode: shared, upload, download or conservative", def: "shared",
		help: "shared: send changes made here and receive the others' (the usual choice).\n" +
			"upload: only send; files the others change never come here (e.g. a machine that produces data).\n" +
			"download: only receive; changes made here are never sent (e.g. a mirror or a backup machine).\n" +
			"conservative: send, and receive only files not changed here since they last came.",
		check: func(s string) (string, error) { s = strings.ToLower(s); return s, checkMode(s) },
	}); err != nil {
		return nil, err
	}
	if p.Mode != "download" {
		n, err := w.ask(question{
			prompt: "Pullers: how many clients must fetch an update before its data leaves the relay (0 = all)", def: "0",
			help: "Data you push stays on the relay until this many other clients have fetched it; then it is\n" +
				"removed to save space. 0 waits for every registered client that pulls (the safe choice);\n" +
				"a smaller number frees space sooner, and a client that comes later asks for a re-send.",
			check: func(s string) (string, error) {
				if n, err := strconv.Atoi(s); err != nil || n < 0 {
					return "", fmt.Errorf("%q: give a whole number, 0 or more", s)
				}
				return s, nil
			},
		})
		if err != nil {
			return nil, err
		}
		p.Pullers, _ = strconv.Atoi(n)
	}
	if p.Quota, err = w.ask(question{
		prompt: "Quota on the relay, e.g. 2GB (none = no limit)", def: "none",
		help: "The most bytes escale keeps on the relay: a push that would go over waits until the others\n" +
			"have fetched enough. Use it when the relay's space is small or paid for. Sizes: 500MB, 2GB,\n" +
			"1.5GiB (KB MB GB are powers of 1000, KiB MiB GiB of 1024).",
		check: func(s string) (string, error) {
			if strings.EqualFold(s, "none") || s == "0" {
				return "", nil
			}
			_, err := parseQuota(s)
			return s, err
		},
	}); err != nil {
		return nil, err
	}
	return p, nil
}

func (w *wizard) askFolder() (string, error) {
	for {
		dir, err := w.ask(question{
			prompt: "Local folder to sync", def: "~/Sync",
			help: "The folder on this machine whose files escale keeps in sync with the other clients.\n" +
				"Files already there are sent on the first sync; a missing folder can be created now.",
			check: absPath,
		})
		if err != nil {
			return "", err
		}
		st, err := os.Stat(dir)
		switch {
		case err == nil && st.IsDir():
			return dir, nil
		case err == nil:
			fmt.Fprintf(w.out, "  %s is a file, not a folder; give a folder\n", dir)
			continue
		case !errors.Is(err, os.ErrNotExist):
			fmt.Fprintf(w.out, "  %v\n", err)
			continue
		}
		ok, err := w.yes(fmt.Sprintf("%s does not exist. Create it?", dir), true, "")
		if err != nil {
			return "", err
		}
		if ok {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				fmt.Fprintf(w.out, "  could not create it: %v\n", err)
				continue
			}
			return dir, nil
		}
	}
}

// absPath expands "~/" and makes a path absolute from the current folder.
func absPath(s string) (string, error) {
	if s == "" {
		return "", errors.New("give a folder")
	}
	return filepath.Abs(expandHome(s))
}

func (w *wizard) askRelay(repo, local string) (string, error) {
	ctx := ctxOf(w.c)
	for {
		remotes, err := storage.ListRemotes(ctx)
		if err != nil {
			fmt.Fprintf(w.out, "  (could not list rclone's remotes: %v)\n", err)
		}
		fmt.Fprintln(w.out, "The relay is a folder every client can reach; it only ever holds encrypted data.")
		if len(remotes) > 0 {
			fmt.Fprintf(w.out, "  1) a remote of rclone.conf: %s\n", strings.Join(remotes, ", "))
		} else {
			fmt.Fprintf(w.out, "  1) a remote of rclone.conf (%s has none yet)\n", storage.ConfigPath())
		}
		fmt.Fprintln(w.out, "  2) a new FTP, SFTP, WebDAV or S3 remote (saved in rclone.conf)")
		fmt.Fprintln(w.out, "  3) a folder on this machine: a local disk or a mounted network share")
		def := "3"
		if len(remotes) > 0 {
			def = "1"
		}
		choice, err := w.ask(question{
			prompt: "Relay", def: def,
			help: "1: a remote you made with `rclone config` (any of rclone's 70 backends).\n" +
				"2: escale asks for the server's address and account and saves the remote in rclone.conf, with\n" +
				"   the password obscured there (never in escale's file). Dropbox, Google Drive, OneDrive and\n" +
				"   other services that sign in through a browser: run `rclone config` first, then choose 1.\n" +
				"3: a folder on a disk this machine mounts (USB drive, NFS or SMB share, a synced cloud folder).",
			check: func(s string) (string, error) {
				if s != "1" && s != "2" && s != "3" {
					return "", errors.New("answer 1, 2 or 3")
				}
				return s, nil
			},
		})
		if err != nil {
			return "", err
		}
		var remote string
		switch choice {
		case "1":
			if len(remotes) == 0 {
				fmt.Fprintln(w.out, "  rclone.conf has no remote: choose 2 to make one, or run `rclone config` first")
				continue
			}
			remote, err = w.ask(question{
				prompt: "Remote", def: remotes[0],
				help: "The name of the remote in rclone.conf (or its number in the list).",
				check: func(s string) (string, error) {
					s = strings.TrimSuffix(s, ":")
					if n, err := strconv.Atoi(s); err == nil && n >= 1 && n <= len(remotes) {
						return remotes[n-1], nil
					}
					if !slices.Contains(remotes, s) {
						return "", fmt.Errorf("%q is not one of %s", s, strings.Join(remotes, ", "))
					}
					return s, nil
				},
			})
		case "2":
			remote, err = w.newRemote(repo)
			if errors.Is(err, errInputEnded) {
				return "", err
			}
			if err != nil {
				fmt.Fprintf(w.out, "  %v\n", err)
				continue
			}
		case "3":
			return w.askLocalRelay(local)
		}
		if err != nil {
			return "", err
		}
		dir, err := w.ask(question{
			prompt: fmt.Sprintf("Folder on %s", remote), def: "escale/" + repo,
			help: "The folder on the remote that holds this repository; escale creates it. Every client\n" +
				"of the repository uses the same folder; each repository needs its own.",
		})
		if err != nil {
			return "", err
		}
		return remote + ":" + strings.Trim(dir, "/"), nil
	}
}

func (w *wizard) askLocalRelay(local string) (string, error) {
	for {
		dir, err := w.ask(question{
			prompt: "Relay folder",
			help: "A folder outside the synced one, on storage every client mounts (or, to try escale, any\n" +
				"folder: two configurations on one machine can sync through it).",
			check: func(s string) (string, error) {
				p, err := absPath(s)
				if err != nil {
					return "", err
				}
				if rel, err := filepath.Rel(local, p); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
					return "", fmt.Errorf("%s is inside the synced folder %s; the relay must be outside it", p, local)
				}
				return p, nil
			},
		})
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(dir); err == nil {
			return dir, nil
		}
		ok, err := w.yes(fmt.Sprintf("%s does not exist. Create it?", dir), true, "")
		if err != nil {
			return "", err
		}
		if ok {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				fmt.Fprintf(w.out, "  could not create it: %v\n", err)
				continue
			}
			return dir, nil
		}
	}
}

// remoteNameRE is a safe subset of what rclone accepts as a remote name.
var remoteNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// serverField is one question about a new remote, saved as an rclone option.
type serverField struct {
	option, prompt, def, help string
	required, secret          bool
}

// serverFields lists the questions for each kind of server escale can
// set up itself.
func serverFields() map[string][]serverField {
	return map[string][]serverField{
		"ftp": {
			{option: "host", prompt: "FTP server's host name", required: true},
			{option: "port", prompt: "Port", def: "21"},
			{option: "user", prompt: "User name", def: currentUser()},
			{option: "pass", prompt: "Password", secret: true},
			{option: "explicit_tls", prompt: "Use TLS (FTPS, explicit)? true or false", def: "false",
				help: "true when the server asks for AUTH TLS on port 21; for implicit FTPS (port 990) run `rclone config`."},
		},
		"sftp": {
			{option: "host", prompt: "SSH server's host name", required: true},
			{option: "port", prompt: "Port", def: "22"},
			{option: "user", prompt: "User name", def: currentUser()},
			{option: "pass", prompt: "Password (empty: your SSH key or agent)", secret: true},
			{option: "key_file", prompt: "SSH private key file (empty: the agent, or the password)",
				help: "e.g. ~/.ssh/id_ed25519; leave empty to use ssh-agent or the password."},
		},
		"webdav": {
			{option: "url", prompt: "WebDAV URL, e.g. https://cloud.example.org/remote.php/dav/files/me", required: true},
			{option: "vendor", prompt: "Server: nextcloud, owncloud, sharepoint, fastmail, rclone or other", def: "other"},
			{option: "user", prompt: "User name"},
			{option: "pass", prompt: "Password", secret: true},
		},
		"s3": {
			{option: "provider", prompt: "Provider: AWS, Minio, Ceph, Wasabi, Cloudflare, DigitalOcean, Other...", def: "AWS",
				help: "One of rclone's S3 providers (`rclone help backend s3` lists them all)."},
			{option: "access_key_id", prompt: "Access key ID", required: true},
			{option: "secret_access_key", prompt: "Secret access key", secret: true},
			{option: "region", prompt: "Region (empty: the provider's default)"},
			{option: "endpoint", prompt: "Endpoint URL (empty for AWS)"},
		},
	}
}

// newRemote asks for a server and saves it as a remote in rclone.conf.
func (w *wizard) newRemote(repo string) (string, error) {
	fields := serverFields()
	kind, err := w.ask(question{
		prompt: "Kind of server: ftp, sftp, webdav or s3", def: "sftp",
		help: "sftp: any machine you reach with ssh. ftp: a classic FTP (or FTPS) account. webdav: Nextcloud,\n" +
			"ownCloud, a NAS, many web hosts. s3: Amazon S3 or any S3-compatible store (MinIO, Wasabi, R2...).\n" +
			"Dropbox, Google Drive and OneDrive sign in through a browser: run `rclone config`, then choose 1.",
		check: func(s string) (string, error) {
			s = strings.ToLower(s)
			if _, ok := fields[s]; ok {
				return s, nil
			}
			switch s {
			case "dropbox", "drive", "google drive", "onedrive", "box", "pcloud":
				return "", fmt.Errorf("%s signs in through a browser: run `rclone config` (it opens the page), then run escale init again and choose 1", s)
			}
			return "", fmt.Errorf("%q: answer ftp, sftp, webdav or s3 (any other backend: run `rclone config`, then choose 1)", s)
		},
	})
	if err != nil {
		return "", err
	}
	existing, _ := storage.ListRemotes(ctxOf(w.c))
	name, err := w.ask(question{
		prompt: "Name of the new remote in rclone.conf", def: repo + "-relay",
		help: "rclone.conf keeps the server's address and account under this name; `rclone ls NAME:` uses it too.",
		check: func(s string) (string, error) {
			if !remoteNameRE.MatchString(s) {
				return "", fmt.Errorf("%q: use letters, digits, _ . and -", s)
			}
			if slices.Contains(existing, s) {
				return "", fmt.Errorf("rclone.conf already has a remote %s; choose another name (or choose 1 to use it)", s)
			}
			return s, nil
		},
	})
	if err != nil {
		return "", err
	}
	params := map[string]string{}
	for _, f := range fields[kind] {
		var v string
		if f.secret {
			v, err = w.secret(f.prompt)
		} else {
			v, err = w.ask(question{prompt: f.prompt, def: f.def, help: f.help, check: func(s string) (string, error) {
				if f.required && s == "" {
					return "", errors.New("this one is needed")
				}
				if f.option == "key_file" && s != "" {
					return absPath(s)
				}
				return s, nil
			}})
		}
		if err != nil {
			return "", err
		}
		if v != "" {
			params[f.option] = v
		}
	}
	if err := storage.CreateRemote(ctxOf(w.c), name, kind, params); err != nil {
		return "", fmt.Errorf("could not save the remote: %w", err)
	}
	fmt.Fprintf(w.out, "saved remote %s in %s\n", name, storage.ConfigPath())
	return name, nil
}

// askKey decides where the repository key comes from.
func (w *wizard) askKey(p *initPlan) error {
	gen := w.t.defaultPassphraseFile(p.Repo)
	fmt.Fprintln(w.out, "The key: every client of the repository needs the same passphrase (or an age identity added with `escale key add`).")
	fmt.Fprintf(w.out, "  1) generate a new passphrase into %s (the first client of a new repository)\n", gen)
	fmt.Fprintln(w.out, "  2) use an existing passphrase file (joining: a copy of the first client's file)")
	fmt.Fprintln(w.out, "  3) use an age identity file (age-keygen output)")
	fmt.Fprintln(w.out, "  4) no encryption (whoever reads the relay reads your files)")
	def := "1"
	if _, err := os.Stat(gen); err == nil {
		def = "2"
	}
	for {
		choice, err := w.ask(question{
			prompt: "Key", def: def,
			help: "The relay only sees encrypted data; the key opens it. A generated passphrase is 160 random\n" +
				"bits written to a file only you can read (mode 0600); copy that file to each other client\n" +
				"and choose 2 there. Keep a copy elsewhere too: without it the relay's data is lost.\n" +
				"An age identity (3) works too once `escale key add --identity` admitted it on the relay.",
			check: func(s string) (string, error) {
				if s < "1" || s > "4" || len(s) != 1 {
					return "", errors.New("answer 1, 2, 3 or 4")
				}
				return s, nil
			},
		})
		if err != nil {
			return err
		}
		switch choice {
		case "1":
			if _, err := os.Stat(gen); err == nil {
				fmt.Fprintf(w.out, "  %s exists already: choose 2 to use it, or move it away\n", gen)
				continue
			}
			p.PassphraseFile, p.Generate = gen, true
			return nil
		case "4":
			p.NoEncryption = true
			return nil
		}
		file, err := w.ask(question{
			prompt: map[string]string{"2": "Passphrase file", "3": "age identity file"}[choice],
			def:    map[string]string{"2": existingOr(gen), "3": ""}[choice],
			help:   "The file that holds the key; the configuration will name it, so keep it where it is.",
			check: func(s string) (string, error) {
				f, err := absPath(s)
				if err != nil {
					return "", err
				}
				if st, err := os.Stat(f); err != nil || !st.Mode().IsRegular() {
					return "", fmt.Errorf("%s is not a file; give the file that holds the key", f)
				}
				return f, nil
			},
		})
		if err != nil {
			return err
		}
		if choice == "2" {
			p.PassphraseFile = file
		} else {
			p.KeyFile = file
		}
		return nil
	}
}

func existingOr(p string) string {
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

// offerRelayTest runs `escale relay test`'s checks on the new relay, on a
// smaller sample so the wizard does not keep the user waiting.
func (w *wizard) offerRelayTest(relay string) error {
	ok, err := w.yes("Test the relay now? (writes and removes a temporary folder on it)", true,
		"The same checks as `escale relay test`: escale needs to list, write, read, rename and delete there.")
	if err != nil || !ok {
		return err
	}
	ctx, stop := signal.NotifyContext(ctxOf(w.c), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := relaycheck.Run(ctx, relay, relaycheck.Options{BigSize: 8 << 20, SmallCount: 16})
	if rep == nil {
		rep = &relaycheck.Report{Relay: relay}
	}
	printReport(w.out, rep)
	switch {
	case err != nil:
		fmt.Fprintf(w.out, "the relay test stopped: %v\nthe configuration is written; fix the relay, then run `escale relay test %s`\n", err, shellQuote(relay))
	case rep.Failed:
		fmt.Fprintf(w.out, "the configuration is written; fix the relay, then run `escale relay test %s`\n", shellQuote(relay))
	}
	return nil
}

// hostClientName is the host name as config makes it a client name.
func hostClientName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return ""
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, h)
}

var clientNameRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$`)

func checkClientName(s string) (string, error) {
	if !clientNameRE.MatchString(s) {
		return "", fmt.Errorf("%q: use up to 64 letters, digits, ., - and _ (not starting with .)", s)
	}
	return s, nil
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return os.Getenv("USERNAME")
}
