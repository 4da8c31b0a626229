// Package testserver starts real storage servers on 127.0.0.1 for tests and
// hands back escale relay specs (rclone inline remotes) pointing at a fresh
// empty folder on each.
//
// Two families: rclone's own servers run in-process through the serve/start
// RC call; Debian's vsftpd, pure-ftpd, sshd and apache2 run as child
// processes, each with its own config, port and files in a temp folder,
// touching no system service. scripts/install-test-servers.sh installs them.
// A server whose software is missing skips the test, or fails it when
// ESCALE_REQUIRE_SERVERS=1 (as CI sets).
package testserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Server is one running storage server.
type Server struct {
	// Name says which server this is: "rclone-webdav", "vsftpd", ...
	Name string
	// Spec is the relay spec for a fresh empty folder on this server.
	Spec string
	// Dir is where the server keeps that folder's bytes on local disk.
	// rclone's in-process servers cache directory listings (for rclone's
	// default --dir-cache-time), so a change made here behind such a
	// server's back may not show through it at once; the Debian servers
	// read the disk on every request.
	Dir string
	// Addr is the host:port the server listens on.
	Addr string
	// Stop stops the server; it is also registered with t.Cleanup and safe
	// to call more than once.
	Stop func()
}

// RequireEnv is the environment variable that turns a missing server from a
// skip into a failure.
const RequireEnv = "ESCALE_REQUIRE_SERVERS"

// errMissing marks a server whose software is not on this machine.
var errMissing = errors.New("not installed")

// errRaceUnsafe marks a server that cannot run under the race detector; it
// is skipped even when servers are required.
var errRaceUnsafe = errors.New("skipped under the race detector")

const installHint = "run scripts/install-test-servers.sh as root to install it"

func required() bool { return os.Getenv(RequireEnv) == "1" }

// starter starts one kind of server or says why it could not.
type starter struct {
	name  string
	start func(testing.TB) (*Server, error)
}

func starters() []starter {
	return []starter{
		{"rclone-webdav", startRcloneWebDAV},
		{"rclone-ftp", startRcloneFTP},
		{"rclone-sftp", startRcloneSFTP},
		{"rclone-s3", startRcloneS3},
		{"vsftpd", external(func(t testing.TB) (*Server, error) { return startVsftpd(t, false) })},
		{"vsftpd-tls", external(func(t testing.TB) (*Server, error) { return startVsftpd(t, true) })},
		{"pure-ftpd", external(startPureFTPd)},
		{"openssh", external(startOpenSSH)},
		{"apache-dav", external(startApacheDAV)},
	}
}

// NoExternalEnv set to 1 leaves out the servers that run as separate
// programs (make test-short), as if they were not installed.
const NoExternalEnv = "ESCALE_NO_EXTERNAL_SERVERS"

func external(start func(testing.TB) (*Server, error)) func(testing.TB) (*Server, error) {
	return func(t testing.TB) (*Server, error) {
		if os.Getenv(NoExternalEnv) == "1" {
			return nil, fmt.Errorf("%w: %s=1", errMissing, NoExternalEnv)
		}
		return start(t)
	}
}

// must turns a start result into a server, a skip or a failure.
func must(t testing.TB, name string, s *Server, err error) *Server {
	t.Helper()
	if err == nil {
		return s
	}
	if errors.Is(err, errRaceUnsafe) {
		t.Skipf("%s: %v", name, err)
	}
	if errors.Is(err, errMissing) && !required() {
		t.Skipf("%s: %v (set %s=1 to fail instead of skipping)", name, err, RequireEnv)
	}
	t.Fatalf("%s: %v", name, err)
	return nil
}

// RcloneWebDAV starts rclone's WebDAV server in-process, with basic auth.
func RcloneWebDAV(t testing.TB) *Server {
	t.Helper()
	s, err := startRcloneWebDAV(t)
	return must(t, "rclone-webdav", s, err)
}

// RcloneFTP starts rclone's FTP server in-process, with a user and password.
// It skips under the race detector: the FTP library it uses
// (goftp.io/server v2.0.3) sets its listener in Serve and reads it in
// Shutdown without synchronization, which the detector reports.
func RcloneFTP(t testing.TB) *Server {
	t.Helper()
	s, err := startRcloneFTP(t)
	return must(t, "rclone-ftp", s, err)
}

// RcloneSFTP starts rclone's SFTP server in-process, with a user and
// password and a host key the spec pins.
func RcloneSFTP(t testing.TB) *Server {
	t.Helper()
	s, err := startRcloneSFTP(t)
	return must(t, "rclone-sftp", s, err)
}

// RcloneS3 starts rclone's S3 server in-process, with a v4 auth key pair.
func RcloneS3(t testing.TB) *Server {
	t.Helper()
	s, err := startRcloneS3(t)
	return must(t, "rclone-s3", s, err)
}

// Vsftpd starts Debian's vsftpd; with tls it requires explicit FTPS.
func Vsftpd(t testing.TB, tls bool) *Server {
	t.Helper()
	s, err := external(func(t testing.TB) (*Server, error) { return startVsftpd(t, tls) })(t)
	name := "vsftpd"
	if tls {
		name = "vsftpd-tls"
	}
	return must(t, name, s, err)
}

// PureFTPd starts pure-ftpd with a virtual user from its own PureDB.
func PureFTPd(t testing.TB) *Server {
	t.Helper()
	s, err := external(startPureFTPd)(t)
	return must(t, "pure-ftpd", s, err)
}

// OpenSSH starts OpenSSH's sshd with key authentication and internal-sftp.
func OpenSSH(t testing.TB) *Server {
	t.Helper()
	s, err := external(startOpenSSH)(t)
	return must(t, "openssh", s, err)
}

// ApacheDAV starts apache2 with mod_dav_fs behind basic auth.
func ApacheDAV(t testing.TB) *Server {
	t.Helper()
	s, err := external(startApacheDAV)(t)
	return must(t, "apache-dav", s, err)
}

// All starts every server above, for table-driven tests. A server whose
// software is missing is left out with a log line, so the others still run;
// with ESCALE_REQUIRE_SERVERS=1 it fails the test instead. Under the race
// detector rclone's FTP server is always left out (see RcloneFTP).
func All(t testing.TB) []*Server {
	t.Helper()
	var out []*Server
	for _, st := range starters() {
		s, err := st.start(t)
		switch {
		case err == nil:
			out = append(out, s)
		case errors.Is(err, errRaceUnsafe), errors.Is(err, errMissing) && !required():
			t.Logf("leaving out %s: %v", st.name, err)
		default:
			t.Fatalf("%s: %v", st.name, err)
		}
	}
	return out
}

// newServer fills in a Server whose Stop runs stop once, at the latest when
// the test ends.
func newServer(t testing.TB, name, spec, dir, addr string, stop func()) *Server {
	var once sync.Once
	s := &Server{Name: name, Spec: spec, Dir: dir, Addr: addr, Stop: func() { once.Do(stop) }}
	t.Cleanup(s.Stop)
	return s
}

// freePort asks the kernel for a free port on 127.0.0.1. Another process
// may take it before the server binds it, so callers retry on collision.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startAttempts bounds the retries when a freshly picked port was taken.
const startAttempts = 3

// onFreePort runs start with free ports until it succeeds or has failed
// startAttempts times, returning the last error.
func onFreePort(start func(port int) error) error {
	var err error
	for range startAttempts {
		var port int
		port, err = freePort()
		if err != nil {
			return err
		}
		if err = start(port); err == nil {
			return nil
		}
	}
	return err
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// opt is one option of an rclone connection string.
type opt struct{ key, value string }

// connString builds an rclone inline remote ":backend,k=v,...:path". Values
// holding a character the parser treats specially are single-quoted, with
// quotes doubled, as rclone's fs/fspath expects.
func connString(backend string, opts []opt, path string) string {
	var b strings.Builder
	b.WriteString(":" + backend)
	for _, o := range opts {
		b.WriteString("," + o.key + "=" + quoteValue(o.value))
	}
	b.WriteString(":" + path)
	return b.String()
}

func quoteValue(v string) string {
	if !strings.ContainsAny(v, `,:'"`) {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// privateRoot makes a temp folder for a server that runs as another user
// (nobody, www-data): unlike t.TempDir's parent it can be traversed by them.
func privateRoot(t testing.TB, name string) (string, error) {
	dir, err := os.MkdirTemp("", "escale-"+name+"-")
	if err != nil {
		return "", fmt.Errorf("create temp folder for %s: %w", name, err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("open %s to the server's user: %w", dir, err)
	}
	return dir, nil
}

// findBinary returns the first of paths that is an executable file.
func findBinary(name string, paths ...string) (string, error) {
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s %w (looked for %s): %s", name, errMissing, strings.Join(paths, ", "), installHint)
}

// needRoot reports the Debian servers as unavailable to a non-root user:
// they chroot, switch users or bind privileged helpers.
func needRoot(name string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s needs root to run in tests, %w for this user: run the tests as root", name, errMissing)
	}
	return nil
}

// extractRoot is where install-test-servers.sh unpacks the FTP server that
// dpkg cannot install beside the other (vsftpd and pure-ftpd conflict).
const extractRoot = "/opt/escale-test-servers"
