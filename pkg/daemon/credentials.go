package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
	"golang.org/x/term"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/protocol"
)

// Credentials reads a repository's key from where KeySource says it is.
// The terminal prompt is used only when tty is a terminal.
func Credentials(r *config.Repository, getenv func(string) string, tty *os.File, prompt io.Writer) (protocol.Credentials, error) {
	interactive := tty != nil && term.IsTerminal(int(tty.Fd()))
	src, err := r.KeySource(getenv, interactive)
	if err != nil {
		return protocol.Credentials{}, err
	}
	switch src.Kind {
	case config.KeyNone:
		return protocol.Credentials{}, nil
	case config.KeyPassphraseFile, config.KeyCredential:
		pass, err := readPassphrase(src.Path)
		if err != nil {
			return protocol.Credentials{}, fmt.Errorf("repository.%s: %w", r.Name, err)
		}
		return protocol.Credentials{Passphrase: pass}, nil
	case config.KeyIdentityFile:
		f, err := os.Open(src.Path)
		if err != nil {
			return protocol.Credentials{}, fmt.Errorf("repository.%s.key_file: %w", r.Name, err)
		}
		defer f.Close()
		ids, err := age.ParseIdentities(f)
		if err != nil {
			return protocol.Credentials{}, fmt.Errorf("repository.%s.key_file %s: %w; it must hold an age identity (AGE-SECRET-KEY-1...), e.g. from age-keygen", r.Name, src.Path, err)
		}
		return protocol.Credentials{Identity: ids[0]}, nil
	case config.KeyEnv:
		if getenv == nil {
			getenv = os.Getenv
		}
		return protocol.Credentials{Passphrase: getenv("ESCALE_PASSPHRASE")}, nil
	case config.KeyPrompt:
		fmt.Fprintf(prompt, "Passphrase for repository %s: ", r.Name)
		b, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return protocol.Credentials{}, fmt.Errorf("read passphrase: %w", err)
		}
		if len(b) == 0 {
			return protocol.Credentials{}, errors.New("empty passphrase")
		}
		return protocol.Credentials{Passphrase: string(b)}, nil
	}
	return protocol.Credentials{}, fmt.Errorf("repository.%s: no key: set passphrase_file or key_file, or ESCALE_PASSPHRASE", r.Name)
}

func readPassphrase(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("passphrase file: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("passphrase file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		// Warned by the caller through the error-free path would be lost; a
		// readable passphrase is worth a loud line on stderr.
		fmt.Fprintf(os.Stderr, "escale: warning: passphrase file %s can be read by other users; chmod 600 it\n", path)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	pass := strings.TrimRight(string(line), "\r")
	if pass == "" {
		return "", fmt.Errorf("passphrase file %s is empty: its first line is the passphrase", path)
	}
	return pass, nil
}
