package config

import (
	"fmt"
	"os"
	"path/filepath"
)

// KeyKind says where a repository key comes from at run time.
type KeyKind int

// Key sources, in the order KeySource tries them.
const (
	KeyNone           KeyKind = iota // encryption = "none": no key
	KeyPassphraseFile                // passphrase_file
	KeyIdentityFile                  // key_file, an age identity
	KeyCredential                    // a systemd credential holding the passphrase
	KeyEnv                           // $ESCALE_PASSPHRASE
	KeyPrompt                        // asked on the terminal
)

func (k KeyKind) String() string {
	switch k {
	case KeyNone:
		return "none"
	case KeyPassphraseFile:
		return "passphrase file"
	case KeyIdentityFile:
		return "age identity file"
	case KeyCredential:
		return "systemd credential"
	case KeyEnv:
		return "ESCALE_PASSPHRASE"
	case KeyPrompt:
		return "terminal prompt"
	}
	return fmt.Sprintf("KeyKind(%d)", int(k))
}

// KeySource is where a repository's key will be read from. It holds no secret.
type KeySource struct {
	Kind KeyKind
	// Path is the file to read for KeyPassphraseFile, KeyIdentityFile and
	// KeyCredential.
	Path string
}

// KeySource decides where the repository key comes from. Load leaves this
// to run time because a passphrase may arrive outside the file. The order:
// passphrase_file or key_file (the file must exist); else the systemd
// credential "escale.NAME.passphrase", then "escale.passphrase", in
// $CREDENTIALS_DIRECTORY (LoadCredential= in the unit); else
// $ESCALE_PASSPHRASE (shared by every repository); else, when interactive,
// a terminal prompt. getenv nil means os.Getenv.
func (r *Repository) KeySource(getenv func(string) string, interactive bool) (KeySource, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if r.Encryption == EncryptionNone {
		return KeySource{Kind: KeyNone}, nil
	}
	for _, f := range []struct {
		kind KeyKind
		key  string
		path string
		what string
	}{{KeyPassphraseFile, "passphrase_file", r.PassphraseFile, "one line, the passphrase"}, {KeyIdentityFile, "key_file", r.KeyFile, "an age identity, e.g. from `age-keygen`"}} {
		if f.path == "" {
			continue
		}
		st, err := os.Stat(f.path)
		switch {
		case err != nil && os.IsNotExist(err):
			return KeySource{}, fmt.Errorf("repository.%s.%s: %s does not exist; create it (%s) or fix the path", r.Name, f.key, f.path, f.what)
		case err != nil:
			return KeySource{}, fmt.Errorf("repository.%s.%s: %w", r.Name, f.key, err)
		case !st.Mode().IsRegular():
			return KeySource{}, fmt.Errorf("repository.%s.%s: %s is not a regular file; point it at the file that holds the key", r.Name, f.key, f.path)
		}
		return KeySource{Kind: f.kind, Path: f.path}, nil
	}
	if dir := getenv("CREDENTIALS_DIRECTORY"); dir != "" {
		for _, name := range []string{"escale." + r.Name + ".passphrase", "escale.passphrase"} {
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return KeySource{Kind: KeyCredential, Path: p}, nil
			}
		}
	}
	if getenv("ESCALE_PASSPHRASE") != "" {
		return KeySource{Kind: KeyEnv}, nil
	}
	if interactive {
		return KeySource{Kind: KeyPrompt}, nil
	}
	return KeySource{}, fmt.Errorf("repository.%s: encryption is age but no key is available; set passphrase_file or key_file, "+
		"provide the systemd credential escale.%s.passphrase, set ESCALE_PASSPHRASE, or run escale in a terminal to be asked", r.Name, r.Name)
}
