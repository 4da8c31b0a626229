package testserver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rclone/rclone/fs/config/obscure"
)

const (
	apacheModules = "/usr/lib/apache2/modules"
	// apacheUser is the user Debian's apache2 workers run as.
	apacheUser = "www-data"
)

// apacheModuleFiles are the only modules loaded: the MPM, basic auth
// against a password file, and WebDAV on the file system. unixd, which
// switches workers to apacheUser, is built into Debian's apache2.
var apacheModuleFiles = [][2]string{
	{"mpm_prefork_module", "mod_mpm_prefork.so"},
	{"authn_core_module", "mod_authn_core.so"},
	{"authn_file_module", "mod_authn_file.so"},
	{"auth_basic_module", "mod_auth_basic.so"},
	{"authz_core_module", "mod_authz_core.so"},
	{"authz_user_module", "mod_authz_user.so"},
	{"dav_module", "mod_dav.so"},
	{"dav_fs_module", "mod_dav_fs.so"},
}

// startApacheDAV runs apache2 in the foreground with a minimal config of its
// own (ServerRoot, port, pid file, logs and lock database in the temp
// folder) serving a WebDAV folder behind basic auth.
func startApacheDAV(t testing.TB) (*Server, error) {
	const name = "apache-dav"
	bin, err := findBinary("apache2", "/usr/sbin/apache2")
	if err != nil {
		return nil, err
	}
	for _, m := range apacheModuleFiles {
		if _, err := os.Stat(filepath.Join(apacheModules, m[1])); err != nil {
			return nil, fmt.Errorf("apache2 module %s %w: %s", m[1], errMissing, installHint)
		}
	}
	if err := needRoot(name); err != nil {
		return nil, err
	}
	uid, gid, err := lookupIDs(apacheUser)
	if err != nil {
		return nil, fmt.Errorf("apache2's user %w (%v): %s", errMissing, err, installHint)
	}
	root, err := privateRoot(t, name)
	if err != nil {
		return nil, err
	}
	// Workers run as www-data: they own the served tree and the lock db.
	docRoot := filepath.Join(root, "dav")
	dir := filepath.Join(docRoot, relayFolder)
	lockDir := filepath.Join(root, "lock")
	for _, d := range []string{docRoot, dir, lockDir} {
		if err := ownedDir(d, uid, gid); err != nil {
			return nil, err
		}
	}
	user, pass := "escale", secret()
	hash, err := bcryptHash(pass)
	if err != nil {
		return nil, err
	}
	htpasswd := filepath.Join(root, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":"+hash+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("write htpasswd: %w", err)
	}
	// The realm of the 401 a plain GET gets carries this server's token.
	token := "escale-" + secret()
	errorLog := filepath.Join(root, "error.log")
	conf := filepath.Join(root, "httpd.conf")
	build := func(port int) ([]string, error) {
		var b strings.Builder
		for _, m := range apacheModuleFiles {
			fmt.Fprintf(&b, "LoadModule %s %s\n", m[0], filepath.Join(apacheModules, m[1]))
		}
		fmt.Fprintf(&b, `ServerRoot %[1]q
ServerName 127.0.0.1
Listen 127.0.0.1:%[2]d
PidFile %[3]q
DefaultRuntimeDir %[1]q
ErrorLog %[4]q
LogLevel warn
User %[5]s
Group #%[6]d
StartServers 2
MinSpareServers 2
MaxSpareServers 8
MaxRequestWorkers 32
KeepAlive On
DocumentRoot %[7]q
DAVLockDB %[8]q
<Directory />
	AllowOverride None
	Require all denied
</Directory>
<Directory %[7]q>
	Dav On
	AuthType Basic
	AuthName "escale test %[10]s"
	AuthBasicProvider file
	AuthUserFile %[9]q
	Require valid-user
</Directory>
`, root, port, filepath.Join(root, "httpd.pid"), errorLog, apacheUser, gid,
			docRoot, filepath.Join(lockDir, "DAVLock"), htpasswd, token)
		if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
			return nil, fmt.Errorf("write apache2 config: %w", err)
		}
		return []string{"-f", conf, "-d", root, "-DFOREGROUND"}, nil
	}
	p, addr, err := runProcess(name, root, bin, "GET / HTTP/1.0\r\n\r\n", token, build, errorLog)
	if err != nil {
		return nil, err
	}
	spec := connString("webdav", []opt{
		{"url", "http://" + addr},
		{"vendor", "other"},
		{"user", user},
		{"pass", obscure.MustObscure(pass)},
	}, relayFolder)
	return newServer(t, name, spec, dir, addr, p.stop), nil
}
