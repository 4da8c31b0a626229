package storage

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config"
	"github.com/rclone/rclone/fs/config/configmap"
	"github.com/rclone/rclone/fs/fspath"
)

// relaySpec is a parsed relay spec.
type relaySpec struct {
	fsString string // what rclone's NewFs gets
	remote   string // the config remote name ("" for inline and local)
	display  string // the spec with secrets redacted
}

// isLocalSpec says whether spec names a local directory rather than a remote.
// rclone would guess the same for most, but "C:\dir" is only a drive on
// Windows, and a bare relative name is made absolute so a later chdir cannot
// move the relay.
func isLocalSpec(spec string) bool {
	if filepath.IsAbs(spec) || spec == "." || spec == ".." ||
		strings.HasPrefix(spec, "./") || strings.HasPrefix(spec, "../") {
		return true
	}
	if runtime.GOOS == "windows" && (filepath.VolumeName(spec) != "" ||
		strings.HasPrefix(spec, `.\`) || strings.HasPrefix(spec, `..\`)) {
		return true
	}
	return !strings.Contains(spec, ":")
}

func parseSpec(spec string) (relaySpec, error) {
	if strings.TrimSpace(spec) == "" {
		return relaySpec{}, errors.New(`empty relay spec: give "remote:path", ":type,opt=value:path" or a local folder`)
	}
	if isLocalSpec(spec) {
		abs, err := filepath.Abs(spec)
		if err != nil {
			return relaySpec{}, fmt.Errorf("relay folder %q: %w", spec, err)
		}
		return relaySpec{fsString: abs, display: abs}, nil
	}
	parsed, err := fspath.Parse(spec)
	if err != nil {
		return relaySpec{}, fmt.Errorf("relay spec %s: %w (expected \"remote:path\" or \":type,opt=value:path\")", redactSpec(spec), err)
	}
	rs := relaySpec{fsString: spec, display: redactSpec(spec)}
	if parsed.Name != "" && !strings.HasPrefix(parsed.Name, ":") {
		rs.remote = parsed.Name
	}
	if paced, ok := withWebDAVPace(parsed); ok {
		rs.fsString = paced
	}
	return rs, nil
}

// webdavMinSleep is the least time escale lets rclone's WebDAV backend
// leave between two requests when the remote does not set pacer_min_sleep.
// rclone's 10 ms default caps a remote at 100 requests a second, and a
// relay spends four on each 8 MiB chunk pack (MKCOL, PUT and PROPFIND up, a
// GET down): that cap, not the server, made a gigabyte over loopback WebDAV
// take 9 s instead of 6 (docs/BENCHMARKS.md). The pacer still backs off
// from there when a server answers 429 or 503.
const webdavMinSleep = "2ms"

// withWebDAVPace adds pacer_min_sleep = webdavMinSleep to the connection
// string of a WebDAV relay whose remote, inline options and environment
// leave it unset.
func withWebDAVPace(p fspath.Parsed) (string, bool) {
	const key = "pacer_min_sleep"
	if _, ok := p.Config.Get(key); ok {
		return "", false
	}
	typ, ok := strings.CutPrefix(p.Name, ":")
	if !ok {
		if typ = config.GetValue(p.Name, "type"); config.GetValue(p.Name, key) != "" {
			return "", false
		}
	}
	if typ != "webdav" {
		return "", false
	}
	if _, ok := os.LookupEnv("RCLONE_WEBDAV_PACER_MIN_SLEEP"); ok {
		return "", false
	}
	cfg := configmap.Simple{}
	for k, v := range p.Config {
		cfg[k] = v
	}
	cfg.Set(key, webdavMinSleep)
	return p.Name + "," + cfg.String() + ":" + p.Path, true
}

// redactSpec hides the secrets of an inline remote: every option rclone
// marks as a password or sensitive, and any password inside a URL option.
// Unparseable specs are hidden whole, as they might hold anything.
func redactSpec(spec string) string {
	parsed, err := fspath.Parse(spec)
	if err != nil {
		return "<unparseable relay spec>"
	}
	if len(parsed.Config) == 0 {
		return spec
	}
	var options fs.Options
	if strings.HasPrefix(parsed.Name, ":") {
		if info, err := fs.Find(parsed.Name[1:]); err == nil {
			options = info.Options
		}
	}
	clean := make(configmap.Simple, len(parsed.Config))
	for k, v := range parsed.Config {
		clean[k] = redactValue(options, k, v)
	}
	return parsed.Name + "," + clean.String() + ":" + parsed.Path
}

// identityOptions are options rclone flags as sensitive (they identify a
// server or an account) that escale still shows, because a relay nobody can
// recognise in a log helps no one. Their secrets live in other options.
var identityOptions = map[string]bool{"host": true, "user": true, "username": true, "url": true, "endpoint": true}

func redactValue(options fs.Options, key, value string) string {
	name := strings.ReplaceAll(key, "-", "_")
	if opt := options.Get(name); opt != nil && (opt.IsPassword || (opt.Sensitive && !identityOptions[name])) {
		return "REDACTED"
	}
	lower := strings.ToLower(name)
	for _, word := range []string{"pass", "secret", "token", "key", "credential"} {
		if strings.Contains(lower, word) {
			return "REDACTED"
		}
	}
	if u, err := url.Parse(value); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			return u.Redacted()
		}
	}
	return value
}

// Redact returns spec with its secrets hidden, for messages about a relay
// that could not even be opened.
func Redact(spec string) string { return redactSpec(spec) }
