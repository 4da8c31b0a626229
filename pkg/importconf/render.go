package importconf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/escale-sync/escale/pkg/config"
)

// encryption converts encryption and passphrase. escale encrypts with age,
// so the original's ciphers all become age; a passphrase written in the old
// file goes to a file of its own (Result.Secrets), never into the TOML.
func (c *converter) encryption(s *section, name string, get func(string) *option) []entry {
	enc, pp := get("encryption"), get("passphrase")
	on, algo := false, ""
	if enc != nil {
		v := strings.ToLower(strings.TrimSpace(enc.value))
		if b, ok := parseBool(v); ok {
			on, algo = b, "fernet"
		} else {
			switch {
			case v == "plain":
			case v == "fernet" || v == "blowfish" || strings.HasPrefix(v, "blowfish.") || strings.HasPrefix(v, "native"):
				on, algo = true, v
			default:
				c.fail(enc, `not an encryption the original knew; it read yes/no, "fernet", "blowfish", "blowfish.cryptography", "blowfish.blowfish", "native" or "plain"`)
				return nil
			}
		}
	}
	if !on {
		c.note(s.name, enc, `the original did not encrypt this repository, so neither will escale (encryption = "none"); to encrypt it, remove that line and set passphrase_file`)
		if pp != nil {
			c.note(s.name, pp, "unused: encryption is off")
		}
		return []entry{{"encryption", config.QuoteTOML(config.EncryptionNone), "the original's default: no encryption"}}
	}
	out := []entry{{"encryption", config.QuoteTOML(config.EncryptionAge), fmt.Sprintf("from %q (line %d): %s becomes age", enc.key, enc.line, algo)}}
	if pp == nil {
		p := filepath.Join(c.opts.SecretDir, name+".passphrase")
		c.note(s.name, enc, "encryption is on but no passphrase is set (the original refused to start); write one on the first line of %s (chmod 600)", p)
		return append(out, entry{"passphrase_file", config.QuoteTOML(p), "to create"})
	}
	v := strings.TrimSpace(pp.value)
	if p := c.absPath(v); exists(p) || looksLikePath(v) {
		if !exists(p) {
			c.note(s.name, pp, "%s does not exist on this machine; copy the key file there (chmod 600) before syncing", p)
		}
		c.note(s.name, pp, "escale reads the passphrase from the first line of %s; the original read the whole file as raw bytes, so check it holds a single line", p)
		return append(out, entry{"passphrase_file", config.QuoteTOML(p), fmt.Sprintf("from %q (line %d)", pp.key, pp.line)})
	}
	owner := name
	if inDefault := c.f.defaults.get(pp.key) == pp; inDefault {
		owner = "escale"
	}
	p := filepath.Join(c.opts.SecretDir, owner+".passphrase")
	if _, done := c.secrets[p]; !done {
		c.secrets[p] = Secret{Path: p, Data: []byte(pp.value + "\n")}
		c.note(s.name, pp, "the passphrase is written to %s (mode 0600), not into the configuration", p)
	}
	return append(out, entry{"passphrase_file", config.QuoteTOML(p), fmt.Sprintf("the passphrase of %q (line %d)", pp.key, pp.line)})
}

// render writes the TOML: a header, the globals, then one table per section,
// each key under a comment saying where it came from, and the notes at the end.
func (c *converter) render(tables []table) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# escale configuration imported from %s by `escale import-config` on %s.\n", c.f.name, c.opts.Now().Format("2006-01-02"))
	b.WriteString("# Check it with `escale config check`.\n#\n")
	b.WriteString("# escale's relay format is not the original escale's: point each relay at a new,\n")
	b.WriteString("# empty folder (or empty the old one once every client has its files). The first\n")
	b.WriteString("# `escale sync` creates the repository there; the other clients then join it.\n")
	if len(c.global.entries) > 0 {
		b.WriteString("\n# ---- From the lines before the first section (DEFAULT): global keys, and\n# ---- repository keys every repository inherits.\n")
		writeEntries(&b, c.global.entries)
	}
	for _, t := range tables {
		fmt.Fprintf(&b, "\n[repository.%s]\n# %s\n", t.name, t.from)
		writeEntries(&b, t.entries)
	}
	if len(c.notes) > 0 {
		b.WriteString("\n# ---- Not carried over, or changed (also printed by import-config):\n")
		for _, n := range c.notes {
			b.WriteString("# " + strings.ReplaceAll(n.String(), "\n", " ") + "\n")
		}
	}
	return []byte(b.String())
}

func writeEntries(b *strings.Builder, entries []entry) {
	for _, e := range entries {
		if e.comment != "" {
			b.WriteString("# " + e.comment + "\n")
		}
		fmt.Fprintf(b, "%s = %s\n", e.key, e.value)
	}
}

// check loads the TOML as escale will, so a conversion never hands over a
// file that `escale config check` rejects.
func (c *converter) check(data []byte) error {
	getenv := func(k string) string {
		if strings.HasPrefix(k, "ESCALE_") {
			return "" // the user's overrides are not part of the file
		}
		return os.Getenv(k)
	}
	home, _ := os.UserHomeDir()
	_, err := config.Parse(filepath.Join(c.opts.SecretDir, "escale.toml"), data, config.LoadOptions{Getenv: getenv, Home: home})
	if err != nil {
		return fmt.Errorf("the converted configuration does not load; fix the old file and convert again:\n%w", err)
	}
	return nil
}

// looksLikePath tells a file name from a literal secret when the file is
// not on this machine.
func looksLikePath(v string) bool {
	return filepath.IsAbs(v) || strings.HasPrefix(v, "~/") || strings.HasPrefix(v, "./") || strings.HasPrefix(v, "../")
}
