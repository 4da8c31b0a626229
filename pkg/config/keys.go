package config

import (
	"errors"
	"fmt"
	"net/mail"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// globalKeys are the keys that only exist at the top level; each can be
// overridden by ESCALE_<KEY> in the environment.
var globalKeys = []string{"state_dir", "rclone_config", "log_file", "log_level", "log_rotate", "metrics_address",
	"smtp_server", "smtp_from", "smtp_user", "smtp_password_file", "alert_interval", "settle"}

// repoOnlyKeys name one repository's own folders, so a top-level default
// for them would make every repository collide.
var repoOnlyKeys = map[string]bool{"path": true, "relay": true}

// envNotKeys are ESCALE_ variables that are not configuration keys.
var envNotKeys = map[string]bool{"config": true, "passphrase": true}

// repoField decodes one repository key into r; key is the full dotted key
// for messages.
type repoField func(d *decoder, key string, v any, r *Repository)

// repoFields lists every repository key. "refresh" is handled as an alias
// of max_poll in applyTable.
var repoFields = map[string]repoField{
	"path": func(d *decoder, key string, v any, r *Repository) {
		if p, ok := d.path(key, v, "the local folder", false); ok {
			r.Path = p
		}
	},
	"relay": func(d *decoder, key string, v any, r *Repository) {
		if s, ok := d.relay(key, v); ok {
			r.Relay = s
		}
	},
	"client": func(d *decoder, key string, v any, r *Repository) {
		if s, ok := d.str(key, v, `a client name such as "laptop"`); ok {
			if err := checkName(s); err != nil {
				d.add(key, "%q %v", s, err)
				return
			}
			r.Client = s
		}
	},
	"mode": func(d *decoder, key string, v any, r *Repository) {
		if s, ok := d.str(key, v, `"shared", "upload", "download" or "conservative"`); ok {
			switch m := Mode(strings.ToLower(s)); m {
			case ModeShared, ModeUpload, ModeDownload, ModeConservative:
				r.Mode = m
			default:
				d.add(key, `%q is not a mode; use "shared", "upload", "download" or "conservative"`, s)
			}
		}
	},
	"pullers": func(d *decoder, key string, v any, r *Repository) {
		if n, ok := d.int(key, v, "a number of pullers (0 = every registered puller)"); ok {
			if n < 0 {
				d.add(key, "%d is negative; use a number of pullers, or 0 for every registered puller", n)
				return
			}
			r.Pullers = n
		}
	},
	"puller_timeout": durField(func(r *Repository) *time.Duration { return &r.PullerTimeout }),
	"quota": func(d *decoder, key string, v any, r *Repository) {
		if n, ok := d.size(key, v); ok {
			r.Quota = n
		}
	},
	"encryption": func(d *decoder, key string, v any, r *Repository) {
		if s, ok := d.str(key, v, `"age" or "none"`); ok {
			switch e := strings.ToLower(s); e {
			case EncryptionAge, EncryptionNone:
				r.Encryption = e
			default:
				d.add(key, `%q is not an encryption scheme; use "age" or "none"`, s)
			}
		}
	},
	"passphrase_file": func(d *decoder, key string, v any, r *Repository) {
		if p, ok := d.path(key, v, "the file holding the passphrase", true); ok {
			r.PassphraseFile = p
		}
	},
	"key_file": func(d *decoder, key string, v any, r *Repository) {
		if p, ok := d.path(key, v, "the age identity file", true); ok {
			r.KeyFile = p
		}
	},
	"index": func(d *decoder, key string, v any, r *Repository) {
		if s, ok := d.str(key, v, `"topdir:N", "hash:N" or "auto"`); ok {
			spec, err := parseIndex(s)
			if err != nil {
				d.add(key, "%v", err)
				return
			}
			r.Index = spec
		}
	},
	"max_pack_size": func(d *decoder, key string, v any, r *Repository) {
		if n, ok := d.size(key, v); ok {
			if n < 64<<10 || n > 4<<30 {
				d.add(key, "%s is out of range; use a size from 64KiB to 4GiB (default %s)", FormatSize(n), FormatSize(DefaultMaxPackSize))
				return
			}
			r.MaxPackSize = n
		}
	},
	"include":      listField(func(r *Repository) *[]string { return &r.Include }),
	"exclude":      listField(func(r *Repository) *[]string { return &r.Exclude }),
	"include_dirs": listField(func(r *Repository) *[]string { return &r.IncludeDirs }),
	"exclude_dirs": listField(func(r *Repository) *[]string { return &r.ExcludeDirs }),
	"extensions": func(d *decoder, key string, v any, r *Repository) {
		if l, ok := d.list(key, v); ok {
			exts := make([]string, 0, len(l))
			for _, e := range l {
				e = strings.TrimPrefix(strings.TrimSpace(e), ".")
				if e == "" || strings.ContainsAny(e, `/\`) {
					d.add(key, `%q is not a file extension; write it like "txt" or ".txt"`, e)
					continue
				}
				exts = append(exts, e)
			}
			r.Extensions = exts
		}
	},
	"min_poll":     durField(func(r *Repository) *time.Duration { return &r.MinPoll }),
	"max_poll":     durField(func(r *Repository) *time.Duration { return &r.MaxPoll }),
	"lock_timeout": durField(func(r *Repository) *time.Duration { return &r.LockTimeout }),
	"on_error": func(d *decoder, key string, v any, r *Repository) {
		if s, ok := d.str(key, v, `a shell command such as "notify-send escale \"$ESCALE_ERROR\""`); ok {
			r.OnError = strings.TrimSpace(s)
		}
	},
	"maintainer": func(d *decoder, key string, v any, r *Repository) {
		if s, ok := d.str(key, v, `an email address such as "admin@example.org"`); ok {
			if err := checkAddresses(s); err != nil {
				d.add(key, "%v", err)
				return
			}
			r.Maintainer = strings.TrimSpace(s)
		}
	},
	"max_delete": func(d *decoder, key string, v any, r *Repository) {
		if n, ok := d.int(key, v, "a percentage from 0 to 100"); ok {
			if n < 0 || n > 100 {
				d.add(key, "%d is not a percentage; use a number from 0 to 100 (100 turns the guard off)", n)
				return
			}
			r.MaxDelete = n
		}
	},
}

// repoKeys lists the repository keys, sorted, with the "refresh" alias.
var repoKeys = func() []string {
	keys := []string{"refresh"}
	for k := range repoFields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}()

func durField(field func(*Repository) *time.Duration) repoField {
	return func(d *decoder, key string, v any, r *Repository) {
		if t, ok := d.duration(key, v); ok {
			if t <= 0 {
				d.add(key, "must be longer than 0; %s", durationHint)
				return
			}
			*field(r) = t
		}
	}
}

func listField(field func(*Repository) *[]string) repoField {
	return func(d *decoder, key string, v any, r *Repository) {
		l, ok := d.list(key, v)
		if !ok {
			return
		}
		good := true
		for _, p := range l {
			if err := checkPattern(p); err != nil {
				d.add(key, "%v", err)
				good = false
			}
		}
		if good {
			*field(r) = l
		}
	}
}

// checkPattern accepts a glob or a /regex/.
func checkPattern(p string) error {
	if p == "" {
		return errors.New(`empty pattern; write a glob such as "*.tmp" or a regular expression between slashes`)
	}
	if len(p) >= 2 && strings.HasPrefix(p, "/") && strings.HasSuffix(p, "/") {
		if _, err := regexp.Compile(p[1 : len(p)-1]); err != nil {
			return fmt.Errorf("%q is not a valid regular expression (%v); fix it, or write a glob without the slashes", p, err)
		}
		return nil
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q is not a valid glob (%v); check its brackets and escapes", p, err)
	}
	return nil
}

// checkAddresses accepts one address or a comma-separated list; "" means none.
func checkAddresses(s string) error {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	if _, err := mail.ParseAddressList(s); err != nil {
		return fmt.Errorf(`%q is not an email address (%v); write it like "admin@example.org", several separated by commas`, s, err)
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$`)

// checkName accepts repository and client names: they become file and
// object names, so only portable characters are allowed.
func checkName(s string) error {
	if !nameRE.MatchString(s) {
		return errors.New(`is not a valid name; use 1 to 64 letters, digits, "-", "_" or "." (not first)`)
	}
	return nil
}

// parseIndex reads "topdir", "topdir:N", "hash", "hash:N" or "auto"/"".
func parseIndex(s string) (IndexSpec, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || s == "auto" {
		return IndexSpec{}, nil
	}
	kind, n, hasN := strings.Cut(s, ":")
	spec := IndexSpec{Kind: kind}
	switch kind {
	case "topdir":
		spec.N = 1
	case "hash":
	default:
		return spec, fmt.Errorf(`%q is not an index layout; use "topdir:N" (pages by the first N folder levels), "hash:N" (N hash buckets) or "auto"`, s)
	}
	if hasN {
		v, err := strconv.Atoi(n)
		if err != nil || v < 1 || v > 65536 {
			return spec, fmt.Errorf(`%q: N must be a whole number from 1 to 65536, as in "%s:2"`, s, kind)
		}
		spec.N = v
	}
	return spec, nil
}
