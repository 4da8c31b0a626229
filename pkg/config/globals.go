package config

import (
	"fmt"
	"net"
	"net/mail"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// global decodes one global key.
func (d *decoder) global(cfg *Config, key string, v any) {
	cfg.origin[key] = ""
	if name, ok := d.envKeys[key]; ok {
		cfg.origin[key] = "environment " + name
	}
	switch key {
	case "state_dir", "rclone_config", "log_file":
		p, ok := d.path(key, v, "a path", key != "state_dir")
		if !ok {
			return
		}
		switch key {
		case "state_dir":
			cfg.StateDir = p
		case "rclone_config":
			cfg.RcloneConfig = p
		case "log_file":
			cfg.LogFile = p
		}
	case "log_level":
		if s, ok := d.str(key, v, `"debug", "info", "warn" or "error"`); ok {
			switch l := strings.ToLower(s); l {
			case "debug", "info", "warn", "error":
				cfg.LogLevel = l
			case "warning":
				cfg.LogLevel = "warn"
			default:
				d.add(key, `%q is not a log level; use "debug", "info", "warn" or "error"`, s)
			}
		}
	case "log_rotate":
		d.logRotate(cfg, key, v)
	case "smtp_server":
		if s, ok := d.str(key, v, `a mail server as host:port, e.g. "mail.example.org:587"`); ok {
			if addr, ok := smtpAddress(s); ok {
				cfg.SMTPServer = addr
			} else {
				d.add(key, `%q is not a mail server address; write host:port, e.g. "localhost:25" or "mail.example.org:587"`, s)
			}
		}
	case "smtp_from":
		if s, ok := d.str(key, v, `an email address such as "escale@example.org"`); ok && strings.TrimSpace(s) != "" {
			if _, err := mail.ParseAddress(s); err != nil {
				d.add(key, `%q is not an email address (%v); write it like "escale@example.org"`, s, err)
				return
			}
			cfg.SMTPFrom = strings.TrimSpace(s)
		}
	case "smtp_user":
		if s, ok := d.str(key, v, `the mail account's user name`); ok {
			cfg.SMTPUser = strings.TrimSpace(s)
		}
	case "smtp_password_file":
		if p, ok := d.path(key, v, "the file holding the mail account's password", true); ok {
			cfg.SMTPPasswordFile = p
		}
	case "alert_interval":
		if t, ok := d.duration(key, v); ok {
			if t < 0 {
				d.add(key, "must not be negative; %s (0 mails on every failure)", durationHint)
				return
			}
			cfg.AlertInterval = t
		}
	case "settle":
		if t, ok := d.duration(key, v); ok {
			if t < 0 || t > time.Hour {
				d.add(key, "must be between 0s and 1h; %s (0s pushes a file the moment it changes)", durationHint)
				return
			}
			cfg.Settle = t
		}
	case "metrics_address":
		if s, ok := d.str(key, v, `a listening address such as "127.0.0.1:9090"`); ok && s != "" {
			if _, port, err := net.SplitHostPort(s); err != nil || !validPort(port) {
				d.add(key, `%q is not a listening address; write host:port, e.g. "127.0.0.1:9090" or ":9090"`, s)
				return
			}
			cfg.MetricsAddress = s
		}
	}
}

// smtpAddress reads host:port, or a bare host meaning port 25.
func smtpAddress(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", false
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Contains(s, ":") && !strings.HasPrefix(s, "[") {
			return "", false
		}
		host, port = strings.Trim(s, "[]"), "25"
	}
	if host == "" || strings.ContainsAny(host, "/ ") || !validPort(port) || port == "0" {
		return "", false
	}
	return net.JoinHostPort(host, port), true
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}

// logRotate reads log_rotate: a size, false/true, or a table.
func (d *decoder) logRotate(cfg *Config, key string, v any) {
	const hint = `write a size ("10MB"), false, or a table {size = "10MB", keep = 5, max_age = "30d", compress = true}`
	lr := cfg.LogRotate
	switch t := v.(type) {
	case bool:
		if !t {
			lr.Size = 0
		}
	case string:
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "false", "off", "no", "none", "never":
			lr.Size = 0
		case "true", "on", "yes":
		default:
			n, ok := d.size(key, t)
			if !ok {
				return
			}
			lr.Size = n
		}
	case int64, float64:
		n, ok := d.size(key, t)
		if !ok {
			return
		}
		lr.Size = n
	case map[string]any:
		known := []string{"size", "keep", "max_age", "compress"}
		for _, k := range sortedKeys(t) {
			sub := key + "." + k
			switch k {
			case "size":
				if n, ok := d.size(sub, t[k]); ok {
					lr.Size = n
				}
			case "keep":
				if n, ok := d.int(sub, t[k], "a number of rotated files to keep"); ok {
					if n < 0 {
						d.add(sub, "%d is negative; use the number of rotated files to keep", n)
					} else {
						lr.Keep = n
					}
				}
			case "max_age":
				if dur, ok := d.duration(sub, t[k]); ok {
					lr.MaxAge = dur
				}
			case "compress":
				if b, ok := t[k].(bool); ok {
					lr.Compress = b
				} else {
					d.add(sub, "expected true or false, got %s", describe(t[k]))
				}
			default:
				d.add(sub, "%s", unknownKeyMsg(k, known))
			}
		}
	default:
		d.add(key, "expected a size, a boolean or a table, got %s; %s", describe(v), hint)
		return
	}
	if lr.Size != 0 && lr.Size < 100_000 {
		d.add(key, "a rotation size of %s is too small; use at least 100KB, or false to leave rotation to another tool", FormatSize(lr.Size))
		return
	}
	cfg.LogRotate = lr
}

// globalDefaults fills the global keys the file and environment left unset.
func (d *decoder) globalDefaults(cfg *Config) {
	for _, k := range globalKeys {
		if _, ok := cfg.origin[k]; !ok {
			cfg.origin[k] = "default"
		}
	}
	d.alertDefaults(cfg)
	if cfg.StateDir != "" {
		return
	}
	if cfg.origin["state_dir"] != "default" {
		return // set but bad: already reported
	}
	if runtime.GOOS == "windows" {
		if dir := d.opts.Getenv("LocalAppData"); dir != "" {
			cfg.StateDir = filepath.Join(dir, "escale")
			return
		}
	} else if dir := d.opts.Getenv("XDG_STATE_HOME"); filepath.IsAbs(dir) {
		cfg.StateDir = filepath.Join(dir, "escale")
		return
	} else if d.opts.Home != "" {
		cfg.StateDir = filepath.Join(d.opts.Home, ".local", "state", "escale")
		return
	}
	d.add("state_dir", "missing, and no default can be chosen because the home folder is unknown; set state_dir")
}

// alertDefaults fills the mail sender and checks the SMTP account keys,
// which only make sense together.
func (d *decoder) alertDefaults(cfg *Config) {
	if cfg.SMTPFrom == "" {
		host, err := d.opts.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		from := "escale@" + host
		if _, err := mail.ParseAddress(from); err != nil {
			from = "escale@localhost"
		}
		cfg.SMTPFrom = from
	}
	switch {
	case cfg.SMTPUser != "" && cfg.SMTPPasswordFile == "":
		d.add("smtp_user", "is set but smtp_password_file is not; set smtp_password_file to a file holding the password, or remove smtp_user")
	case cfg.SMTPUser == "" && cfg.SMTPPasswordFile != "":
		d.add("smtp_password_file", "is set but smtp_user is not; set smtp_user to the mail account's name, or remove smtp_password_file")
	}
}

// envWarnings flags ESCALE_ variables that look like misspelt or
// misplaced keys. Unrelated ESCALE_ variables (used by tests, say) pass.
func (d *decoder) envWarnings() []string {
	if d.opts.Environ == nil {
		return nil
	}
	var warnings []string
	for _, kv := range d.opts.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		key, ok := strings.CutPrefix(name, "ESCALE_")
		if !ok {
			continue
		}
		key = strings.ToLower(key)
		switch {
		case envNotKeys[key] || contains(globalKeys, key):
		case contains(repoKeys, key):
			warnings = append(warnings, fmt.Sprintf("%s is ignored: only global keys (%s) can be set from the environment; set %s in the configuration file",
				name, strings.Join(globalKeys, ", "), key))
		default:
			if s := closest(key, globalKeys); s != "" {
				warnings = append(warnings, fmt.Sprintf("%s is ignored: it is not a configuration variable; did you mean ESCALE_%s?", name, strings.ToUpper(s)))
			}
		}
	}
	sort.Strings(warnings)
	return warnings
}
