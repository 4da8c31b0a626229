package testserver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/rclone/rclone/backend/ftp"
	_ "github.com/rclone/rclone/backend/s3"
	_ "github.com/rclone/rclone/backend/sftp"
	_ "github.com/rclone/rclone/backend/webdav"
	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config/obscure"
	"github.com/rclone/rclone/fs/object"
	"golang.org/x/crypto/ssh"

	"github.com/escale-sync/escale/pkg/storage/testserver"
)

var servers = []struct {
	name  string
	start func(testing.TB) *testserver.Server
}{
	{"rclone-webdav", testserver.RcloneWebDAV},
	{"rclone-ftp", testserver.RcloneFTP},
	{"rclone-sftp", testserver.RcloneSFTP},
	{"rclone-s3", testserver.RcloneS3},
	{"vsftpd", func(t testing.TB) *testserver.Server { return testserver.Vsftpd(t, false) }},
	{"vsftpd-tls", func(t testing.TB) *testserver.Server { return testserver.Vsftpd(t, true) }},
	{"pure-ftpd", testserver.PureFTPd},
	{"openssh", testserver.OpenSSH},
	{"apache-dav", testserver.ApacheDAV},
}

// TestServers puts an object through each server with rclone, reads it
// back, finds its bytes in the server's folder on disk, deletes it, and
// checks the port is closed once the server is stopped.
func TestServers(t *testing.T) {
	for _, tc := range servers {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := tc.start(t)
			if srv.Name != tc.name {
				t.Errorf("Name = %q, want %q", srv.Name, tc.name)
			}
			t.Logf("spec %s", srv.Spec)
			roundTrip(t, srv)
			srv.Stop()
			if c, err := net.DialTimeout("tcp", srv.Addr, time.Second); err == nil {
				c.Close()
				t.Errorf("%s still accepts connections on %s after Stop", srv.Name, srv.Addr)
			}
			srv.Stop() // a second Stop is harmless
		})
	}
}

func roundTrip(t *testing.T, srv *testserver.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := fs.NewFs(ctx, srv.Spec)
	if err != nil {
		t.Fatalf("open %s: %v", srv.Spec, err)
	}
	entries, err := f.List(ctx, "")
	if err != nil {
		t.Fatalf("list the fresh folder: %v", err)
	}
	if len(entries) != 0 {
		t.Fatalf("fresh folder holds %v, want nothing", entries)
	}

	data := make([]byte, 1<<20+13) // over 1 MiB: several TLS records and TCP windows
	_, _ = rand.Read(data)
	const name = "sub/probe.bin"
	info := object.NewStaticObjectInfo(name, time.Now(), int64(len(data)), true, nil, f)
	if _, err := f.Put(ctx, bytes.NewReader(data), info); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}

	entries, err = f.List(ctx, "sub")
	if err != nil {
		t.Fatalf("list sub: %v", err)
	}
	if len(entries) != 1 || entries[0].Remote() != name || entries[0].Size() != int64(len(data)) {
		t.Fatalf("sub lists %v, want %s of %d bytes", entries, name, len(data))
	}

	obj, err := f.NewObject(ctx, name)
	if err != nil {
		t.Fatalf("find %s: %v", name, err)
	}
	rc, err := obj.Open(ctx)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	got, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes that differ from the %d written", len(got), len(data))
	}

	onDisk := filepath.Join(srv.Dir, filepath.FromSlash(name))
	if disk, err := os.ReadFile(onDisk); err != nil || !bytes.Equal(disk, data) {
		t.Fatalf("bytes on disk at %s differ from those written (err %v)", onDisk, err)
	}

	if err := obj.Remove(ctx); err != nil {
		t.Fatalf("remove %s: %v", name, err)
	}
	if _, err := os.Stat(onDisk); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still on disk after remove (stat: %v)", onDisk, err)
	}
}

// TestWrongCredentialsRefused checks each server really authenticates: the
// spec with its secret swapped for a wrong one cannot list the folder.
// vsftpd is left out: it serves anonymous FTP by design.
func TestWrongCredentialsRefused(t *testing.T) {
	wrongKey := filepath.Join(t.TempDir(), "wrong_key")
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrongKey, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	secretRe := regexp.MustCompile(`(,(?:pass|secret_access_key)=)[^,:]+`)
	keyRe := regexp.MustCompile(`(,key_file=)[^,:]+`)
	for _, tc := range servers {
		if strings.HasPrefix(tc.name, "vsftpd") {
			continue
		}
		if tc.name == "pure-ftpd" && testing.Short() {
			continue // pure-ftpd answers a wrong password only after seconds
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := tc.start(t)
			bad := secretRe.ReplaceAllString(srv.Spec, "${1}"+obscure.MustObscure("wrong"))
			bad = keyRe.ReplaceAllString(bad, "${1}"+wrongKey)
			if bad == srv.Spec {
				t.Fatalf("found no secret to replace in %s", srv.Spec)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			f, err := fs.NewFs(ctx, bad)
			// S3 takes a prefix it may not list for a file, and returns
			// its parent: that listing must be refused too.
			if err == nil || errors.Is(err, fs.ErrorIsFile) {
				_, err = f.List(ctx, "")
			}
			if err == nil {
				t.Fatalf("listed %s with wrong credentials", bad)
			}
			t.Logf("refused as expected: %v", err)
		})
	}
}
