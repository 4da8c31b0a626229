package testserver

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
)

// startOpenSSH runs OpenSSH's sshd in the foreground on its own port with
// its own host key and config: key authentication only, for the user
// running the tests (root), and the in-process internal-sftp subsystem.
// The spec pins the host key through a known_hosts file.
func startOpenSSH(t testing.TB) (*Server, error) {
	const name = "openssh"
	bin, err := findBinary("sshd", "/usr/sbin/sshd")
	if err != nil {
		return nil, err
	}
	if err := needRoot(name); err != nil {
		return nil, err
	}
	// sshd insists on its privilege separation folder; the openssh-server
	// package leaves it to the init script to create.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, fmt.Errorf("create sshd's privilege separation folder /run/sshd: %w", err)
	}
	me, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("look up the user running the tests: %w", err)
	}
	root, err := privateRoot(t, name)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, relayFolder)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create relay folder: %w", err)
	}
	hostKeyPath := filepath.Join(root, "ssh_host_ed25519_key")
	hostKey, err := writeSSHKey(hostKeyPath)
	if err != nil {
		return nil, err
	}
	clientKeyPath := filepath.Join(root, "client_ed25519_key")
	clientKey, err := writeSSHKey(clientKeyPath)
	if err != nil {
		return nil, err
	}
	authorized := filepath.Join(root, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(clientKey), 0o600); err != nil {
		return nil, fmt.Errorf("write authorized_keys: %w", err)
	}
	token := "escale-" + secret() // in sshd's version banner
	conf := filepath.Join(root, "sshd_config")
	build := func(port int) ([]string, error) {
		c := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AllowUsers %s
AllowTcpForwarding no
X11Forwarding no
PermitTTY no
MaxStartups 100
MaxSessions 100
LogLevel VERBOSE
VersionAddendum %s
Subsystem sftp internal-sftp
`, port, hostKeyPath, filepath.Join(root, "sshd.pid"), authorized, me.Username, token)
		if err := os.WriteFile(conf, []byte(c), 0o600); err != nil {
			return nil, fmt.Errorf("write sshd config: %w", err)
		}
		// -D: foreground, -e: log to stderr; sshd re-executes itself, so
		// it needs an absolute path (findBinary returns one).
		return []string{"-D", "-e", "-f", conf}, nil
	}
	p, addr, err := runProcess(name, root, bin, "", token, build)
	if err != nil {
		return nil, err
	}
	knownHosts := filepath.Join(root, "known_hosts")
	if err := writeKnownHosts(knownHosts, addr, hostKey); err != nil {
		p.stop()
		return nil, err
	}
	host, port := splitAddr(addr)
	spec := connString("sftp", []opt{
		{"host", host},
		{"port", port},
		{"user", me.Username},
		{"key_file", clientKeyPath},
		{"known_hosts_file", knownHosts},
	}, dir)
	return newServer(t, name, spec, dir, addr, p.stop), nil
}
