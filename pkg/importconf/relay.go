package importconf

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/escale-sync/escale/pkg/config"
)

// rcloneProtocols were run through rclone by the original, the address
// being the name of an rclone remote (relay/generic/rclone.py).
var rcloneProtocols = map[string]bool{"rclone": true, "amazoncloud": true, "b2": true, "dropbox": true, "googlecloud": true,
	"hubic": true, "onedrive": true, "sftp": true, "swift": true, "s3": true}

// relay builds the relay from address, directory, port, user, password
// and protocol: a local folder, an inline rclone remote, or the name of an
// rclone remote the user creates (when a password is involved, since
// passwords never go into escale's configuration).
func (c *converter) relay(s *section, name string, get func(string) *option) (entry, bool) {
	addrOpt := get("address")
	if addrOpt == nil {
		c.errs = append(c.errs, &LineError{c.f.name, s.line, fmt.Sprintf("[%s] has no relay address (\"host address\"); the original required it too", s.name)})
		return entry{}, false
	}
	val := func(fd string) string {
		if o := get(fd); o != nil {
			return strings.TrimSpace(o.value)
		}
		return ""
	}
	address, dir, port, user, proto := strings.TrimSpace(addrOpt.value), val("directory"), val("port"), val("username"), strings.ToLower(val("protocol"))
	comment := fmt.Sprintf("from %q (line %d)", addrOpt.key, addrOpt.line)
	host, hostPath := address, ""
	if scheme, rest, ok := strings.Cut(address, "://"); ok {
		if proto == "" {
			proto = strings.ToLower(scheme)
		}
		host, hostPath, _ = strings.Cut(rest, "/")
		if h, p, ok := strings.Cut(host, ":"); ok {
			host = h
			if port == "" {
				port = p
			}
		}
	} else if proto == "" && (filepath.IsAbs(address) || strings.HasPrefix(address, "~")) {
		proto = "file"
	}
	folder := strings.Trim(path.Join(hostPath, dir), "/")
	if proto == "" {
		proto = "ftps" // the original's default: FTP over TLS, plain FTP if refused
	}
	remote := cleanName("escale-" + name)

	var kind string
	var params []string
	switch {
	case proto == "file":
		p := address
		if dir != "" {
			p = filepath.Join(address, dir)
		}
		return entry{"relay", config.QuoteTOML(c.absPath(p)), comment + ", a local folder"}, true
	case proto == "ftp" || proto == "ftps":
		kind, params = "ftp", []string{"host=" + inlineValue(host)}
		if proto == "ftps" {
			params = append(params, "explicit_tls=true")
			c.note(s.name, addrOpt, "ftps becomes FTP with explicit TLS; the original fell back to plain FTP when the server refused TLS, escale does not (use protocol ftp for a server without TLS)")
		}
	case proto == "webdav" || proto == "http" || proto == "https":
		scheme := "https"
		if proto == "http" {
			scheme = "http"
		}
		u := scheme + "://" + host
		if port != "" {
			u += ":" + port
		}
		if hostPath != "" {
			u += "/" + strings.Trim(hostPath, "/")
		}
		kind, params, folder = "webdav", []string{"url=" + inlineValue(u)}, strings.Trim(dir, "/")
		port = "" // in the URL
	case rcloneProtocols[proto] && !strings.Contains(address, "://"):
		c.note(s.name, addrOpt, "the rclone remote %q must be in the rclone.conf escale reads (rclone_config; default rclone's own)", address)
		return entry{"relay", config.QuoteTOML(address + ":" + folder), comment + ", an rclone remote"}, true
	case proto == "sftp":
		kind, params = "sftp", []string{"host=" + inlineValue(host)}
	case proto == "google" || proto == "googledrive":
		c.note(s.name, addrOpt, "Google Drive is reached through rclone: create a drive remote named %q with `rclone config`", remote)
		return entry{"relay", config.QuoteTOML(remote + ":" + folder), comment + ", a Google Drive remote to create"}, true
	default:
		c.fail(addrOpt, "protocol %q has no equivalent (the original did not run it either); create an rclone remote for the storage and write relay = \"remote:folder\"", proto)
		return entry{}, false
	}
	if port != "" {
		params = append(params, "port="+inlineValue(port))
	}
	if user != "" {
		params = append(params, "user="+inlineValue(user))
	}
	if pw := get("password"); pw != nil {
		where := fmt.Sprintf("the password of line %d", pw.line)
		if v := strings.TrimSpace(pw.value); exists(c.absPath(v)) || looksLikePath(v) {
			where = "the password in " + c.absPath(v) + ` (its line "user:password", or the password alone)`
		}
		args := strings.ReplaceAll(strings.Join(params, " "), "'", "")
		c.note(s.name, pw, "passwords never go into escale's configuration: create the rclone remote with `rclone config create %s %s %s pass=PASSWORD --obscure`, PASSWORD being %s; relay then works as written",
			remote, kind, args, where)
		return entry{"relay", config.QuoteTOML(remote + ":" + folder), comment + ", an rclone remote to create (see the notes at the end)"}, true
	}
	return entry{"relay", config.QuoteTOML(":" + kind + "," + strings.Join(params, ",") + ":" + folder), comment}, true
}

// inlineValue quotes a value of an inline rclone remote when it holds a
// character of the syntax.
func inlineValue(v string) string {
	if !strings.ContainsAny(v, `,:'"=`) {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}
