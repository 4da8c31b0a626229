package testserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	// The servers serve/start can run, and the local backend they serve.
	_ "github.com/rclone/rclone/backend/local"
	_ "github.com/rclone/rclone/cmd/serve/ftp"
	_ "github.com/rclone/rclone/cmd/serve/s3"
	_ "github.com/rclone/rclone/cmd/serve/sftp"
	_ "github.com/rclone/rclone/cmd/serve/webdav"
	"github.com/rclone/rclone/fs/config/obscure"
	"github.com/rclone/rclone/fs/rc"
)

// relayFolder is the folder each server's spec points at, below its root.
const relayFolder = "relay"

// rcloneServe starts an in-process rclone server of type typ on a local
// temp folder through the serve/start RC call and returns the folder, the
// address it listens on and a function that stops it. addr is empty to let
// the server pick a port, else a fixed address.
func rcloneServe(t testing.TB, typ, addr string, params rc.Params) (root, gotAddr string, stop func(), err error) {
	start, stopCall := rc.Calls.Get("serve/start"), rc.Calls.Get("serve/stop")
	if start == nil || stopCall == nil {
		return "", "", nil, fmt.Errorf("rclone's serve/start RC call is not registered: import github.com/rclone/rclone/cmd/serve")
	}
	root = t.TempDir()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	in := rc.Params{
		"type": typ,
		"fs":   root,
		"addr": addr,
		// dir_cache_time stays at rclone's default: 0 makes the VFS crawl
		// (a conformance Walk took 47 s instead of 0.3 s).
	}
	for k, v := range params {
		in[k] = v
	}
	ctx := context.Background()
	out, err := start.Fn(ctx, in)
	if err != nil {
		return "", "", nil, fmt.Errorf("start rclone %s server on %s: %w", typ, addr, err)
	}
	id, _ := out["id"].(string)
	gotAddr, _ = out["addr"].(string)
	stop = func() {
		if _, err := stopCall.Fn(context.Background(), rc.Params{"id": id}); err != nil {
			t.Logf("stop rclone %s server %s: %v", typ, id, err)
		}
	}
	return root, gotAddr, stop, nil
}

// makeRelayDir creates the fresh empty folder a spec points at.
func makeRelayDir(root string) (string, error) {
	dir := filepath.Join(root, relayFolder)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create relay folder: %w", err)
	}
	return dir, nil
}

func startRcloneWebDAV(t testing.TB) (*Server, error) {
	user, pass := "escale", secret()
	root, addr, stop, err := rcloneServe(t, "webdav", "", rc.Params{"user": user, "pass": pass})
	if err != nil {
		return nil, err
	}
	dir, err := makeRelayDir(root)
	if err != nil {
		stop()
		return nil, err
	}
	spec := connString("webdav", []opt{
		{"url", "http://" + addr},
		{"vendor", "rclone"},
		{"user", user},
		{"pass", obscure.MustObscure(pass)},
	}, relayFolder)
	return newServer(t, "rclone-webdav", spec, dir, addr, stop), nil
}

// startRcloneFTP picks the port itself: rclone's FTP server reports the
// port it was given, so port 0 would leave the address unknown.
func startRcloneFTP(t testing.TB) (*Server, error) {
	if raceDetector {
		return nil, fmt.Errorf("rclone's FTP server (goftp.io/server v2.0.3) races between Serve and Shutdown: %w", errRaceUnsafe)
	}
	user, pass := "escale", secret()
	var root, addr string
	var stop func()
	err := onFreePort(func(port int) error {
		var err error
		root, addr, stop, err = rcloneServe(t, "ftp", hostPort(port), rc.Params{"user": user, "pass": pass})
		return err
	})
	if err != nil {
		return nil, err
	}
	dir, err := makeRelayDir(root)
	if err != nil {
		stop()
		return nil, err
	}
	host, port := splitAddr(addr)
	spec := connString("ftp", []opt{
		{"host", host},
		{"port", port},
		{"user", user},
		{"pass", obscure.MustObscure(pass)},
	}, relayFolder)
	return newServer(t, "rclone-ftp", spec, dir, addr, stop), nil
}

func startRcloneSFTP(t testing.TB) (*Server, error) {
	keys := t.TempDir()
	hostKeyPath := filepath.Join(keys, "host_key")
	hostKey, err := writeSSHKey(hostKeyPath)
	if err != nil {
		return nil, err
	}
	user, pass := "escale", secret()
	root, addr, stop, err := rcloneServe(t, "sftp", "", rc.Params{
		"user": user,
		"pass": pass,
		"key":  []string{hostKeyPath},
		// Not ~/.ssh/authorized_keys: only this test's password gets in.
		"authorized_keys": "",
	})
	if err != nil {
		return nil, err
	}
	knownHosts := filepath.Join(keys, "known_hosts")
	if err := writeKnownHosts(knownHosts, addr, hostKey); err != nil {
		stop()
		return nil, err
	}
	dir, err := makeRelayDir(root)
	if err != nil {
		stop()
		return nil, err
	}
	host, port := splitAddr(addr)
	spec := connString("sftp", []opt{
		{"host", host},
		{"port", port},
		{"user", user},
		{"pass", obscure.MustObscure(pass)},
		{"known_hosts_file", knownHosts},
	}, relayFolder)
	return newServer(t, "rclone-sftp", spec, dir, addr, stop), nil
}

// startRcloneS3 serves buckets as top-level folders: the spec points at the
// prefix "relay" in bucket "escale".
func startRcloneS3(t testing.TB) (*Server, error) {
	const bucket = "escale"
	keyID, key := "escale"+secret()[:8], secret()
	root, addr, stop, err := rcloneServe(t, "s3", "", rc.Params{"auth_key": []string{keyID + "," + key}})
	if err != nil {
		return nil, err
	}
	dir, err := makeRelayDir(filepath.Join(root, bucket))
	if err != nil {
		stop()
		return nil, err
	}
	spec := connString("s3", []opt{
		{"provider", "Rclone"},
		{"endpoint", "http://" + addr},
		{"access_key_id", keyID},
		{"secret_access_key", key},
	}, bucket+"/"+relayFolder)
	return newServer(t, "rclone-s3", spec, dir, addr, stop), nil
}

// splitAddr splits "127.0.0.1:1234" for backends that take host and port
// apart; servers always report their address in that form.
func splitAddr(addr string) (host, port string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, ""
	}
	return host, port
}
