package testserver

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rclone/rclone/fs/config/obscure"
)

// anonFTPUser is the system user vsftpd's anonymous sessions run as; the
// vsftpd package creates it, with a home folder vsftpd enters before the
// chroot. Uploads are written as this user.
const anonFTPUser = "ftp"

// lookupIDs returns the uid and primary gid of a system user.
func lookupIDs(name string) (uid, gid int, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("look up user %s: %w", name, err)
	}
	uid, err = strconv.Atoi(u.Uid)
	if err == nil {
		gid, err = strconv.Atoi(u.Gid)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("user %s has a non-numeric id: %w", name, err)
	}
	return uid, gid, nil
}

// ownedDir creates dir owned by uid:gid, for a server that writes as them.
func ownedDir(dir string, uid, gid int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fmt.Errorf("hand %s to uid %d: %w", dir, uid, err)
	}
	return nil
}

// startVsftpd runs vsftpd standalone in the foreground with anonymous
// logins confined to a chroot in the temp folder, where anonymous may
// upload, create folders, rename and delete (writing as user ftp). Local
// users are off, so it needs no account or PAM service of its own.
func startVsftpd(t testing.TB, tls bool) (*Server, error) {
	name := "vsftpd"
	if tls {
		name = "vsftpd-tls"
	}
	bin, err := findBinary("vsftpd", "/usr/sbin/vsftpd", extractRoot+"/vsftpd/usr/sbin/vsftpd")
	if err != nil {
		return nil, err
	}
	if err := needRoot(name); err != nil {
		return nil, err
	}
	root, err := privateRoot(t, name)
	if err != nil {
		return nil, err
	}
	uid, gid, err := lookupIDs(anonFTPUser)
	if err != nil {
		return nil, fmt.Errorf("vsftpd's anonymous user %w (%v): %s", errMissing, err, installHint)
	}
	// vsftpd refuses a chroot its user can write to: the chroot is
	// root-owned and read-only, the relay folder inside it is ftp's.
	chroot := filepath.Join(root, "ftp")
	empty := filepath.Join(root, "empty")
	for _, d := range []string{chroot, empty} {
		if err := os.Mkdir(d, 0o555); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	dir := filepath.Join(chroot, relayFolder)
	if err := ownedDir(dir, uid, gid); err != nil {
		return nil, err
	}
	var tlsConf string
	if tls {
		cert, key := filepath.Join(root, "cert.pem"), filepath.Join(root, "key.pem")
		if err := writeSelfSignedCert(cert, key); err != nil {
			return nil, err
		}
		tlsConf = strings.Join([]string{
			"ssl_enable=YES",
			"allow_anon_ssl=YES",
			"force_anon_logins_ssl=YES",
			"force_anon_data_ssl=YES",
			"ssl_tlsv1=YES",
			"ssl_sslv2=NO",
			"ssl_sslv3=NO",
			// vsftpd's default, DES-CBC3-SHA, leaves TLS 1.2 clients
			// nothing to agree on.
			"ssl_ciphers=HIGH",
			"rsa_cert_file=" + cert,
			"rsa_private_key_file=" + key,
		}, "\n") + "\n"
	}
	token := "escale-" + secret()
	logFile := filepath.Join(root, "vsftpd.log")
	conf := filepath.Join(root, "vsftpd.conf")
	build := func(port int) ([]string, error) {
		c := fmt.Sprintf(`listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=%d
background=NO
anonymous_enable=YES
no_anon_password=YES
local_enable=NO
anon_root=%s
ftp_username=%s
nopriv_user=nobody
secure_chroot_dir=%s
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
anon_world_readable_only=NO
anon_umask=022
connect_from_port_20=NO
pasv_enable=YES
pasv_address=127.0.0.1
dirmessage_enable=NO
ftpd_banner=%s
use_localtime=NO
seccomp_sandbox=NO
xferlog_enable=YES
xferlog_std_format=NO
log_ftp_protocol=YES
vsftpd_log_file=%s
%s`, port, chroot, anonFTPUser, empty, token, logFile, tlsConf)
		if err := os.WriteFile(conf, []byte(c), 0o600); err != nil {
			return nil, fmt.Errorf("write vsftpd config: %w", err)
		}
		return []string{conf}, nil
	}
	p, addr, err := runProcess(name, root, bin, "", token, build, logFile)
	if err != nil {
		return nil, err
	}
	host, port := splitAddr(addr)
	opts := []opt{
		{"host", host},
		{"port", port},
		{"user", "anonymous"},
		{"pass", obscure.MustObscure("escale@example.invalid")},
	}
	if tls {
		// vsftpd 3.0.3 fails uploads over TLS 1.3 with 426 "Failure reading
		// network stream": the session tickets its OpenSSL sends after the
		// handshake sit unread by the uploading client, whose close then
		// resets the data connection. TLS 1.2 is rclone's documented
		// workaround, and what a real relay spec on vsftpd needs too.
		opts = append(opts, opt{"explicit_tls", "true"}, opt{"no_check_certificate", "true"}, opt{"disable_tls13", "true"})
	}
	return newServer(t, name, connString("ftp", opts, "/"+relayFolder), dir, addr, p.stop), nil
}
