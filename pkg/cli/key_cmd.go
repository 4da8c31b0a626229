package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"filippo.io/age"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/daemon"
	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/storage"
)

// newPassphraseEnv carries a new passphrase (key add, export) for scripts;
// ESCALE_PASSPHRASE stays the one that opens the repository.
const newPassphraseEnv = "ESCALE_NEW_PASSPHRASE"

func keyCommand() *cli.Command {
	repoFlag := &cli.StringFlag{Name: "repo", Usage: "repository `NAME` (default: the only one in the configuration)"}
	waitFlag := &cli.DurationFlag{Name: "wait", Value: time.Minute, Usage: "how long to wait for another admin's key operation to finish"}
	acceptFlag := &cli.BoolFlag{Name: "accept-old-slots", Usage: "also rewrite slots the last rotation did not (check them with `escale key list` first)"}
	newFlags := []cli.Flag{
		&cli.StringFlag{Name: "passphrase-file", Usage: "read the new passphrase from the first line of `FILE`"},
		&cli.StringFlag{Name: "generate", Usage: "generate a strong passphrase and write it to `FILE` (mode 0600; never overwritten)"},
	}
	return &cli.Command{
		Name:  "key",
		Usage: "manage the repository key: who can open it, key rotation, backup",
		Description: "The repository key is random; each key slot on the relay opens it with one passphrase or one\n" +
			"age identity. Commands unlock the repository as `escale sync` does (passphrase_file, key_file,\n" +
			"systemd credential, ESCALE_PASSPHRASE, or a prompt). New passphrases never come from the command\n" +
			"line: --passphrase-file, --generate, $" + newPassphraseEnv + " or a prompt.",
		Subcommands: []*cli.Command{
			{
				Name:  "init",
				Usage: "create the repository on an empty relay, with a new key",
				Description: "Uses the configured passphrase or key file. When none exists yet, generates a strong\n" +
					"passphrase into passphrase_file (or, without one, into the state folder) and says where.",
				Flags:  []cli.Flag{repoFlag},
				Action: keyInit,
			},
			{
				Name:  "add",
				Usage: "add a way in: another passphrase, or an age identity (e.g. for a new client)",
				Flags: append([]cli.Flag{repoFlag, waitFlag,
					&cli.StringFlag{Name: "label", Usage: "what the slot is for, e.g. the client's name (sealed: the relay does not see it)"},
					&cli.StringFlag{Name: "identity", Usage: "age identity or recipients `FILE` (age-keygen output): the slot opens with that identity"},
					&cli.StringFlag{Name: "recipient", Usage: "age recipient (public key, age1...) the slot opens for"},
				}, newFlags...),
				Action: keyAdd,
			},
			{
				Name:   "list",
				Usage:  "list the key slots (kind, label, creation time; never secrets) and the live key epochs",
				Flags:  []cli.Flag{repoFlag, &cli.BoolFlag{Name: "json", Usage: "print as JSON"}},
				Action: keyList,
			},
			{
				Name:      "remove",
				Usage:     "remove a key slot; with --rotate, then start a new key epoch",
				ArgsUsage: "ID|LABEL",
				Description: "A removed key still knows the current key epochs: rotate (now with --rotate, or later with\n" +
					"`escale key rotate`) so it cannot read anything written afterwards.",
				Flags:  []cli.Flag{repoFlag, waitFlag, acceptFlag, &cli.BoolFlag{Name: "rotate", Usage: "rotate right after removing"}},
				Action: keyRemove,
			},
			{
				Name:  "rotate",
				Usage: "start a new key epoch: what is written from now on needs it",
				Description: "Every remaining slot gets the new epoch; running clients switch at their next round and\n" +
					"rewrite their records in it. Older epochs stay until their data is collected: run\n" +
					"`escale key prune` later to drop them.",
				Flags:  []cli.Flag{repoFlag, waitFlag, acceptFlag},
				Action: keyRotate,
			},
			{
				Name:  "prune",
				Usage: "drop key epochs no relay object uses any more (and repair an interrupted rotation)",
				Flags: []cli.Flag{repoFlag, waitFlag, acceptFlag,
					&cli.StringSliceFlag{Name: "forget", Usage: "first delete every relay object of client `NAME` (one removed for good: its records keep an old epoch alive; its updates not pulled yet are lost)"}},
				Action: keyPrune,
			},
			{
				Name:      "export",
				Usage:     "write every live key epoch to FILE for backup, encrypted with a new passphrase",
				ArgsUsage: "FILE",
				Description: "FILE is an age file (scrypt): `age -d FILE` shows the keyrings as JSON. It opens this\n" +
					"repository's objects up to the current epoch: export again after `escale key rotate`.",
				Flags:  append([]cli.Flag{repoFlag}, newFlags...),
				Action: keyExport,
			},
		},
	}
}

// keyEnv is an open relay of one configured repository.
type keyEnv struct {
	ev    *env
	r     *config.Repository
	relay *storage.Relay
	cache string
}

func (k *keyEnv) close() {
	if k.relay != nil {
		k.relay.Close()
	}
	k.ev.close()
}

func openKeyEnv(c *cli.Context) (*keyEnv, error) {
	ev, err := setup(c, false)
	if err != nil {
		return nil, err
	}
	var names []string
	if n := c.String("repo"); n != "" {
		names = []string{n}
	} else if len(ev.cfg.Repositories) > 1 {
		ev.close()
		return nil, withCode(ExitError, fmt.Errorf("%s has %d repositories: choose one with --repo NAME", ev.cfg.File, len(ev.cfg.Repositories)))
	}
	repos, err := daemon.Selected(ev.cfg, names)
	if err == nil && len(repos) != 1 {
		err = fmt.Errorf("%s has no repository", ev.cfg.File)
	}
	if err != nil {
		ev.close()
		return nil, withCode(ExitError, err)
	}
	r := repos[0]
	if r.Encryption == config.EncryptionNone {
		ev.close()
		return nil, withCode(ExitError, fmt.Errorf("repository %s has encryption = none: it has no key (a repository's encryption cannot change; create a new one with encryption = \"age\")", r.Name))
	}
	relay, err := storage.Open(ctxOf(c), r.Relay)
	if err != nil {
		ev.close()
		return nil, withCode(ExitError, err)
	}
	// The same cache the engine uses: a key command spares the sync its scrypt run too.
	return &keyEnv{ev: ev, r: r, relay: relay, cache: filepath.Join(ev.cfg.StateDir, r.Name, "keys.cache")}, nil
}

// withKeyRepo runs fn with the repository open, and closes it after.
func withKeyRepo(c *cli.Context, fn func(k *keyEnv, repo *protocol.Repo) error) error {
	k, err := openKeyEnv(c)
	if err != nil {
		return err
	}
	defer k.close()
	repo, err := k.open(c)
	if err != nil {
		return err
	}
	return fn(k, repo)
}

// open unlocks the repository with the configured key.
func (k *keyEnv) open(c *cli.Context) (*protocol.Repo, error) {
	creds, err := daemon.Credentials(k.r, nil, stdinTTY(c), c.App.ErrWriter)
	if err != nil {
		return nil, withCode(ExitError, err)
	}
	creds.CacheFile = k.cache
	repo, err := protocol.Open(ctxOf(c), k.relay, true, creds)
	if err != nil {
		return nil, withCode(ExitError, fmt.Errorf("repository %s: %w", k.r.Name, err))
	}
	return repo, nil
}

// locked runs f holding the relay's "keys" lock, so two admins never
// rewrite slots at once.
func (k *keyEnv) locked(c *cli.Context, repo *protocol.Repo, f func(ctx context.Context) error) error {
	ctx := ctxOf(c)
	l, err := repo.LockKeys(ctx, protocol.LockOptions{Owner: k.r.Client, Timeout: k.r.LockTimeout, Wait: c.Duration("wait")})
	if err != nil {
		return withCode(ExitError, fmt.Errorf("repository %s: %w", k.r.Name, err))
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-l.Lost():
			cancel() // another admin may have broken it: stop rewriting
		case <-lctx.Done():
		}
	}()
	err = f(lctx)
	if rerr := l.Release(context.WithoutCancel(ctx)); err == nil && rerr != nil {
		k.ev.log.Warn("could not release the relay lock; it expires by itself", "error", rerr)
	}
	if err != nil {
		return withCode(ExitError, fmt.Errorf("repository %s: %w", k.r.Name, err))
	}
	return nil
}

func keyInit(c *cli.Context) error {
	k, err := openKeyEnv(c)
	if err != nil {
		return err
	}
	defer k.close()
	ctx := ctxOf(c)
	if _, err := protocol.ReadMarker(ctx, k.relay); !errors.Is(err, protocol.ErrNoRepository) {
		if err == nil {
			err = fmt.Errorf("the relay %s already holds a repository: use `escale key add` to add a key to it", storage.Redact(k.r.Relay))
		}
		return withCode(ExitError, err)
	}
	var creds protocol.Credentials
	_, srcErr := k.r.KeySource(nil, stdinTTY(c) != nil && term.IsTerminal(int(stdinTTY(c).Fd())))
	switch {
	case srcErr == nil:
		if creds, err = daemon.Credentials(k.r, nil, stdinTTY(c), c.App.ErrWriter); err != nil {
			return withCode(ExitError, err)
		}
	case k.r.KeyFile != "" && k.r.PassphraseFile == "":
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return err
		}
		content := fmt.Sprintf("# escale key for repository %s, created %s\n# public key: %s\n%s\n", k.r.Name, time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
		if err := writeSecretFile(k.r.KeyFile, []byte(content)); err != nil {
			return withCode(ExitError, err)
		}
		fmt.Fprintf(c.App.Writer, "wrote a new age identity to %s (key_file); back it up: without it or another key the repository cannot be opened\n", k.r.KeyFile)
		creds = protocol.Credentials{Identity: id}
	default:
		path := k.r.PassphraseFile
		if path == "" {
			path = filepath.Join(k.ev.cfg.StateDir, k.r.Name, "passphrase")
		}
		pass, err := generatePassphrase()
		if err != nil {
			return err
		}
		if err := writeSecretFile(path, []byte(pass+"\n")); err != nil {
			return withCode(ExitError, err)
		}
		fmt.Fprintf(c.App.Writer, "wrote a new passphrase to %s; back it up: without it or another key the repository cannot be opened\n", path)
		if k.r.PassphraseFile == "" {
			fmt.Fprintf(c.App.Writer, "add to [repository.%s] in %s:  passphrase_file = %q\n", k.r.Name, k.ev.cfg.File, path)
		}
		creds = protocol.Credentials{Passphrase: pass}
	}
	creds.CacheFile = k.cache
	repo, err := protocol.Create(ctx, k.relay, true, creds)
	if errors.Is(err, protocol.ErrCreateRaced) {
		return withCode(ExitError, errors.New("another client created the repository at the same time; use `escale key add` to add a key to it"))
	}
	if err != nil {
		return withCode(ExitError, err)
	}
	fmt.Fprintf(c.App.Writer, "created repository %s on %s, key epoch 1\n", repo.ID(), storage.Redact(k.r.Relay))
	return nil
}

func keyAdd(c *cli.Context) error {
	k, err := openKeyEnv(c)
	if err != nil {
		return err
	}
	defer k.close()
	var rcp *age.X25519Recipient
	switch {
	case c.String("recipient") != "" && c.String("identity") != "":
		return withCode(ExitError, errors.New("give --identity or --recipient, not both"))
	case c.String("recipient") != "":
		if rcp, err = age.ParseX25519Recipient(c.String("recipient")); err != nil {
			return withCode(ExitError, fmt.Errorf("--recipient: %w; give an age X25519 public key (age1...)", err))
		}
	case c.String("identity") != "":
		if rcp, err = readRecipient(c.String("identity")); err != nil {
			return withCode(ExitError, err)
		}
	}
	var pass string
	if rcp == nil {
		if pass, err = newPassphrase(c); err != nil {
			return withCode(ExitError, err)
		}
	}
	repo, err := k.open(c)
	if err != nil {
		return err
	}
	return k.locked(c, repo, func(ctx context.Context) error {
		var si protocol.SlotInfo
		if rcp != nil {
			si, err = repo.AddIdentity(ctx, rcp, c.String("label"))
		} else {
			si, err = repo.AddPassphrase(ctx, pass, c.String("label"))
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "added %s key slot %s (%s)\n", si.Kind, si.ID, labelOf(si))
		return nil
	})
}

func keyList(c *cli.Context) error {
	return withKeyRepo(c, func(k *keyEnv, repo *protocol.Repo) error {
		slots, err := repo.KeySlots(ctxOf(c))
		if err != nil {
			return withCode(ExitError, err)
		}
		if c.Bool("json") {
			type slotOut struct {
				ID      string    `json:"id"`
				Kind    string    `json:"kind"`
				Label   string    `json:"label"`
				Created time.Time `json:"created,omitzero"`
				This    bool      `json:"this_client"`
				Legacy  bool      `json:"legacy,omitempty"`
				Epoch   uint32    `json:"epoch,omitempty"` // the epoch its info was sealed with
			}
			out := struct {
				Repository string    `json:"repository"`
				Epochs     []uint32  `json:"epochs"`
				Slots      []slotOut `json:"slots"`
			}{Repository: repo.ID(), Epochs: repo.Epochs()}
			for _, s := range slots {
				out.Slots = append(out.Slots, slotOut{s.ID, s.Kind, s.Label, s.Created, s.Own, s.Legacy, s.Epoch})
			}
			enc := json.NewEncoder(c.App.Writer)
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		}
		ep := repo.Epochs()
		fmt.Fprintf(c.App.Writer, "repository %s: key epochs %s (new objects use %d)\n", repo.ID(), strings.Trim(fmt.Sprint(ep), "[]"), ep[len(ep)-1])
		tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  id\tkind\tlabel\tcreated\t")
		for _, s := range slots {
			created, this := "-", ""
			if !s.Created.IsZero() {
				created = s.Created.Local().Format(time.DateTime)
			}
			if s.Own {
				this = "(this client)"
			}
			if !s.Legacy && s.Epoch < ep[len(ep)-1] {
				// Slot rewrites seal infos with the newest epoch: this one was
				// not rewritten by the last rotation.
				this += fmt.Sprintf(" (from key epoch %d: not rewritten by the last rotation; remove it unless you know it)", s.Epoch)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", s.ID, s.Kind, labelOf(s), created, this)
		}
		return tw.Flush()
	})
}

func keyRemove(c *cli.Context) error {
	if c.NArg() != 1 {
		return withCode(ExitError, errors.New("usage: escale key remove ID|LABEL (`escale key list` shows them)"))
	}
	k, err := openKeyEnv(c)
	if err != nil {
		return err
	}
	defer k.close()
	repo, err := k.open(c)
	if err != nil {
		return err
	}
	return k.locked(c, repo, func(ctx context.Context) error {
		si, err := repo.RemoveSlot(ctx, c.Args().First())
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "removed key slot %s (%s)\n", si.ID, labelOf(si))
		if !c.Bool("rotate") {
			fmt.Fprintln(c.App.Writer, "its holder still knows the current key epoch: run `escale key rotate` so it cannot read anything written from now on")
			return nil
		}
		return rotate(c, ctx, repo)
	})
}

func rotate(c *cli.Context, ctx context.Context, repo *protocol.Repo) error {
	kr, err := repo.Rotate(ctx, protocol.RewriteOptions{AcceptOldSlots: c.Bool("accept-old-slots")})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "key epoch %d started: every remaining slot holds it, and clients write with it from their next round\n", kr.Epoch)
	fmt.Fprintln(c.App.Writer, "older epochs stay until no relay object uses them: run `escale key prune` once every client has synced")
	return nil
}

func keyRotate(c *cli.Context) error {
	return withKeyRepo(c, func(k *keyEnv, repo *protocol.Repo) error {
		return k.locked(c, repo, func(ctx context.Context) error { return rotate(c, ctx, repo) })
	})
}

func keyPrune(c *cli.Context) error {
	return withKeyRepo(c, func(k *keyEnv, repo *protocol.Repo) error {
		return k.locked(c, repo, func(ctx context.Context) error {
			for _, name := range c.StringSlice("forget") {
				if name == k.r.Client {
					return withCode(ExitError, fmt.Errorf("%s is this client: it cannot forget itself", name))
				}
				n, err := repo.ForgetClient(ctx, name)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "forgot client %s: %d relay objects deleted\n", name, n)
			}
			rep, err := repo.PruneEpochs(ctx, protocol.RewriteOptions{AcceptOldSlots: c.Bool("accept-old-slots")})
			if err != nil {
				return err
			}
			for i, u := range rep.Use {
				fmt.Fprintf(c.App.Writer, "key epoch %d: %d relay objects of %d clients", u.Epoch, u.Objects, len(u.Clients))
				if i < len(rep.Use)-1 {
					// An old epoch: these clients have not re-sealed, or their data waits.
					fmt.Fprintf(c.App.Writer, " (client ids %s)", strings.Join(u.Clients, ", "))
				}
				fmt.Fprintln(c.App.Writer)
			}
			if len(rep.Dropped) > 0 {
				fmt.Fprintf(c.App.Writer, "dropped key epochs %s from every slot\n", strings.Trim(fmt.Sprint(rep.Dropped), "[]"))
			} else if len(rep.Use) > 1 {
				fmt.Fprintln(c.App.Writer, "older epochs are still in use: they go once their data is collected and their clients have synced")
			}
			if rep.Unknown > 0 {
				fmt.Fprintf(c.App.Writer, "%d relay objects open with no live key epoch (left alone)\n", rep.Unknown)
			}
			return nil
		})
	})
}

func keyExport(c *cli.Context) error {
	if c.NArg() != 1 {
		return withCode(ExitError, errors.New("usage: escale key export FILE"))
	}
	out := c.Args().First()
	if _, err := os.Lstat(out); err == nil {
		return withCode(ExitError, fmt.Errorf("%s exists: escale never overwrites a key export; choose another name", out))
	}
	k, err := openKeyEnv(c)
	if err != nil {
		return err
	}
	defer k.close()
	pass, err := newPassphrase(c)
	if err != nil {
		return withCode(ExitError, err)
	}
	repo, err := k.open(c)
	if err != nil {
		return err
	}
	data, err := envelope.WrapPassphrase(repo.Keyrings(), pass)
	if err != nil {
		return withCode(ExitError, err)
	}
	if err := writeSecretFile(out, data); err != nil {
		return withCode(ExitError, err)
	}
	ep := repo.Epochs()
	fmt.Fprintf(c.App.Writer, "wrote key epochs %s of repository %s to %s (age, scrypt; `age -d %s` opens it)\n", strings.Trim(fmt.Sprint(ep), "[]"), repo.ID(), out, out)
	return nil
}

func labelOf(s protocol.SlotInfo) string {
	if s.Label == "" {
		return "no label"
	}
	return s.Label
}

// newPassphrase reads a new passphrase: --passphrase-file, --generate,
// $ESCALE_NEW_PASSPHRASE, or twice on the terminal. Never from argv.
func newPassphrase(c *cli.Context) (string, error) {
	switch {
	case c.String("passphrase-file") != "" && c.String("generate") != "":
		return "", errors.New("give --passphrase-file or --generate, not both")
	case c.String("passphrase-file") != "":
		p := c.String("passphrase-file")
		data, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("--passphrase-file: %w", err)
		}
		if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o077 != 0 {
			fmt.Fprintf(c.App.ErrWriter, "escale: warning: passphrase file %s can be read by other users; chmod 600 it\n", p)
		}
		line, _, _ := bytes.Cut(data, []byte("\n"))
		pass := strings.TrimRight(string(line), "\r")
		if pass == "" {
			return "", fmt.Errorf("--passphrase-file %s is empty: its first line is the passphrase", p)
		}
		return pass, nil
	case c.String("generate") != "":
		pass, err := generatePassphrase()
		if err != nil {
			return "", err
		}
		if err := writeSecretFile(c.String("generate"), []byte(pass+"\n")); err != nil {
			return "", err
		}
		fmt.Fprintf(c.App.Writer, "wrote the new passphrase to %s\n", c.String("generate"))
		return pass, nil
	case os.Getenv(newPassphraseEnv) != "":
		return os.Getenv(newPassphraseEnv), nil
	}
	tty := stdinTTY(c)
	if tty == nil || !term.IsTerminal(int(tty.Fd())) {
		return "", fmt.Errorf("no new passphrase: give --passphrase-file FILE, --generate FILE or $%s, or run in a terminal", newPassphraseEnv)
	}
	fmt.Fprint(c.App.ErrWriter, "New passphrase: ")
	a, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(c.App.ErrWriter)
	if err != nil {
		return "", fmt.Errorf("read passphrase: %w", err)
	}
	fmt.Fprint(c.App.ErrWriter, "Again: ")
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(c.App.ErrWriter)
	if err != nil {
		return "", fmt.Errorf("read passphrase: %w", err)
	}
	if len(a) == 0 || !bytes.Equal(a, b) {
		return "", errors.New("the passphrases are empty or differ")
	}
	return string(a), nil
}

// generatePassphrase returns 160 random bits as 32 base32 characters in
// groups of four: easy to copy, far beyond guessing even without scrypt.
func generatePassphrase() (string, error) {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	s := strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
	var groups []string
	for i := 0; i < len(s); i += 4 {
		groups = append(groups, s[i:i+4])
	}
	return strings.Join(groups, "-"), nil
}

// writeSecretFile creates path with mode 0600, refusing to overwrite
// anything: a key file replaced by mistake may be the only way in.
func writeSecretFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: escale never overwrites a key file; choose another path", path)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// readRecipient reads the public key of an age identity file, or the first
// recipient of a recipients file.
func readRecipient(path string) (*age.X25519Recipient, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--identity: %w", err)
	}
	if ids, err := age.ParseIdentities(bytes.NewReader(data)); err == nil {
		for _, id := range ids {
			if x, ok := id.(*age.X25519Identity); ok {
				return x.Recipient(), nil
			}
		}
	}
	if rs, err := age.ParseRecipients(bytes.NewReader(data)); err == nil {
		for _, r := range rs {
			if x, ok := r.(*age.X25519Recipient); ok {
				return x, nil
			}
		}
	}
	return nil, fmt.Errorf("--identity %s holds no age X25519 identity or recipient (AGE-SECRET-KEY-1... or age1...)", path)
}
