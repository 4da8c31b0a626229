package testserver

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rclone/rclone/fs/config/obscure"
)

// pureFTPdUser is the system user pure-ftpd's virtual user writes files as;
// nobody exists on every Debian system.
const pureFTPdUser = "nobody"

// startPureFTPd runs pure-ftpd in the foreground with one virtual user from
// a PureDB of its own (no system account, no PAM), chrooted to a home in
// the temp folder.
func startPureFTPd(t testing.TB) (*Server, error) {
	const name = "pure-ftpd"
	bin, err := findBinary(name, "/usr/sbin/pure-ftpd", extractRoot+"/pure-ftpd/usr/sbin/pure-ftpd")
	if err != nil {
		return nil, err
	}
	purePW, err := findBinary("pure-pw", "/usr/bin/pure-pw", extractRoot+"/pure-ftpd/usr/bin/pure-pw")
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
	uid, gid, err := lookupIDs(pureFTPdUser)
	if err != nil {
		return nil, err
	}
	home := filepath.Join(root, "home")
	dir := filepath.Join(home, relayFolder)
	for _, d := range []string{home, dir} {
		if err := ownedDir(d, uid, gid); err != nil {
			return nil, err
		}
	}
	user, pass := "escale", secret()
	pdb, err := writePureDB(purePW, root, user, pass, home, uid, gid)
	if err != nil {
		return nil, err
	}
	// pure-ftpd greets with a line from its fortune file: this server's token.
	token := "escale-" + secret()
	fortunes := filepath.Join(root, "fortunes")
	if err := os.WriteFile(fortunes, []byte(token+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("write pure-ftpd fortune file: %w", err)
	}
	build := func(port int) ([]string, error) {
		return []string{
			"-F", fortunes,
			"-S", "127.0.0.1," + strconv.Itoa(port),
			"-l", "puredb:" + pdb,
			"-E",            // no anonymous logins
			"-A",            // chroot everyone
			"-H",            // do not resolve client names
			"-U", "133:022", // files 644, folders 755
			"-c", "100", // clients in all
			"-C", "100", // clients per address (all come from 127.0.0.1)
			"-f", "none", // no syslog: the test machine may have none
			"-g", filepath.Join(root, "pure-ftpd.pid"),
		}, nil
	}
	p, addr, err := runProcess(name, root, bin, "", token, build)
	if err != nil {
		return nil, err
	}
	host, port := splitAddr(addr)
	spec := connString("ftp", []opt{
		{"host", host},
		{"port", port},
		{"user", user},
		{"pass", obscure.MustObscure(pass)},
	}, relayFolder)
	return newServer(t, name, spec, dir, addr, p.stop), nil
}

// writePureDB writes a pure-ftpd passwd file holding one virtual user and
// compiles it with pure-pw. The password is hashed with bcrypt, which
// pure-ftpd checks through crypt(3), rather than pure-pw's default argon2id
// whose cost would slow every login.
func writePureDB(purePW, root, user, pass, home string, uid, gid int) (string, error) {
	hash, err := bcryptHash(pass)
	if err != nil {
		return "", err
	}
	passwd := filepath.Join(root, "pureftpd.passwd")
	pdb := filepath.Join(root, "pureftpd.pdb")
	// login:hash:uid:gid:gecos:home/./ then 12 empty limits; "/./" makes
	// the home the user's chroot.
	line := fmt.Sprintf("%s:%s:%d:%d::%s/./::::::::::::\n", user, hash, uid, gid, home)
	if err := os.WriteFile(passwd, []byte(line), 0o600); err != nil {
		return "", fmt.Errorf("write pure-ftpd passwd file: %w", err)
	}
	out, err := exec.Command(purePW, "mkdb", pdb, "-f", passwd).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("pure-pw mkdb: %w: %s", err, out)
	}
	return pdb, nil
}
