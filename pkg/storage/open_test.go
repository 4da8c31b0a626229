package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rclone/rclone/fs/config/obscure"

	"github.com/escale-sync/escale/pkg/storage"
)

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	return port
}

func TestUnreachableHost(t *testing.T) {
	testConfig(t)
	ctx := context.Background()
	port := closedPort(t)
	pass := obscure.MustObscure("secret")
	opts := []storage.OpenOption{storage.WithRetries(5), storage.WithTimeout(20 * time.Second)}

	// Backends that connect when opened. s3 answers "that is a file" when it
	// cannot check; the adapter must report the real cause.
	for _, spec := range []string{
		":sftp,host=127.0.0.1,port=" + port + ",user=escale,pass=" + pass + ":relay",
		":ftp,host=127.0.0.1,port=" + port + ",user=escale,pass=" + pass + ":relay",
		":s3,provider=Other,endpoint='http://127.0.0.1:" + port + "',access_key_id=a,secret_access_key=b:bucket/relay",
	} {
		_, err := storage.Open(ctx, spec, opts...)
		if storage.KindOf(err) != storage.KindUnreachable {
			t.Fatalf("open %s: %v, want kind unreachable", spec, err)
		}
		var se *storage.Error
		if !errors.As(err, &se) || se.Op == "" || strings.Contains(err.Error(), pass) {
			t.Fatalf("open %s: error %q lacks an Op or shows the password", spec, err)
		}
		if !strings.Contains(err.Error(), "check the host name") {
			t.Fatalf("error %q does not say what to do next", err)
		}
	}

	// WebDAV connects on the first call.
	r, err := storage.Open(ctx, ":webdav,url='http://127.0.0.1:"+port+"':relay", opts...)
	if err != nil {
		if storage.KindOf(err) != storage.KindUnreachable {
			t.Fatalf("open webdav: %v", err)
		}
		return
	}
	defer r.Close()
	if _, err := r.Stat(ctx, "x"); storage.KindOf(err) != storage.KindUnreachable {
		t.Fatalf("stat on a closed port: %v, want kind unreachable", err)
	}
	if _, err := r.List(ctx, ""); storage.KindOf(err) != storage.KindUnreachable {
		t.Fatalf("list on a closed port: %v, want kind unreachable", err)
	}
	if _, err := r.Put(ctx, "x", strings.NewReader("abc"), 3); storage.KindOf(err) != storage.KindUnreachable {
		t.Fatalf("put on a closed port: %v, want kind unreachable", err)
	}
}

func TestMissingRemoteNamesConfigFile(t *testing.T) {
	conf, _ := testConfig(t)
	_, err := storage.Open(context.Background(), "nosuchremote:some/path")
	if err == nil {
		t.Fatal("open of an undefined remote succeeded")
	}
	if storage.KindOf(err) != storage.KindFatal || !strings.Contains(err.Error(), conf) ||
		!strings.Contains(err.Error(), `"nosuchremote"`) {
		t.Fatalf("open of an undefined remote: %v; want a fatal error naming the remote and %s", err, conf)
	}
}

func TestOpenRefusesBadSpecs(t *testing.T) {
	testConfig(t)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, spec := range []string{"", "  ", file, ":nosuchbackend:x", ":sftp,host=:x"} {
		if r, err := storage.Open(context.Background(), spec); err == nil {
			r.Close()
			t.Fatalf("open %q succeeded", spec)
		} else if storage.KindOf(err) != storage.KindFatal {
			t.Fatalf("open %q: %v, want a fatal error", spec, err)
		}
	}
}

func TestOpenRelativeLocalFolder(t *testing.T) {
	testConfig(t)
	dir := t.TempDir()
	t.Chdir(dir)
	r := openRelay(t, "./relay")
	if want := filepath.Join(dir, "relay"); r.String() != want {
		t.Fatalf("relay %q, want the absolute %q", r.String(), want)
	}
	if _, err := r.Put(context.Background(), "a/b", strings.NewReader("hi"), 2); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "relay", "a", "b")); err != nil || string(got) != "hi" {
		t.Fatalf("file on disk: %q, %v", got, err)
	}
}

func TestStringRedactsSecrets(t *testing.T) {
	testConfig(t)
	// s3 with a bucket root opens without contacting its endpoint.
	r := openRelay(t, ":s3,provider=Other,endpoint='http://user:pw@127.0.0.1:1/s3',access_key_id=AKID,secret_access_key=SAK,session_token=TOK:bucket")
	s := r.String()
	for _, secret := range []string{"pw@", "AKID", "SAK", "TOK"} {
		if strings.Contains(s, secret) {
			t.Fatalf("String() = %q shows %q", s, secret)
		}
	}
	if !strings.Contains(s, "127.0.0.1:1/s3") || !strings.HasSuffix(s, ":bucket") || !strings.HasPrefix(s, ":s3,") {
		t.Fatalf("String() = %q lost the non-secret parts", s)
	}
	// Secrets never show in errors either.
	pass := obscure.MustObscure("hunter2")
	_, err := storage.Open(context.Background(), ":ftp,host=127.0.0.1,port="+closedPort(t)+",user=u,pass="+pass+":relay")
	if err == nil || strings.Contains(err.Error(), pass) {
		t.Fatalf("open error %v shows the password", err)
	}
}

func TestFeatures(t *testing.T) {
	testConfig(t)
	local := openRelay(t, t.TempDir()).Features()
	if local.Type != "local" || !local.IsLocal || !local.ServerSideMove || !local.About || local.BucketBased ||
		local.ConditionalCreate || local.ModTimePrecision <= 0 || len(local.Hashes) == 0 {
		t.Fatalf("local features: %+v", local)
	}
	mem := openRelay(t, ":memory:"+randomName("f-")).Features()
	if mem.Type != "memory" || !mem.BucketBased || mem.IsLocal || mem.About || !mem.ServerSideCopy {
		t.Fatalf("memory features: %+v", mem)
	}
	// S3 opens without contacting the server; its uploads can be conditional.
	s3 := openRelay(t, ":s3,provider=Other,endpoint='http://127.0.0.1:"+closedPort(t)+"',access_key_id=a,secret_access_key=b:bucket").Features()
	if s3.Type != "s3" || !s3.ConditionalCreate || !s3.BucketBased || s3.MaxObjectSize <= 0 {
		t.Fatalf("s3 features: %+v", s3)
	}
}

func TestPutRejectsBadBodies(t *testing.T) {
	testConfig(t)
	r := openRelay(t, t.TempDir())
	ctx := context.Background()
	cases := []struct {
		name string
		body io.Reader
		size int64
		want string
	}{
		{"short", strings.NewReader("12345"), 10, "ended after 5 of its declared 10 bytes"},
		{"long", strings.NewReader("1234567890"), 4, "longer than its declared size 4"},
		{"failing", io.MultiReader(strings.NewReader("abc"), iotestErrReader{}), -1, errBody.Error()},
		{"failing-sized", io.MultiReader(strings.NewReader("abc"), iotestErrReader{}), 10, errBody.Error()},
	}
	for _, c := range cases {
		_, err := r.Put(ctx, c.name, c.body, c.size)
		if storage.KindOf(err) != storage.KindFatal || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: %v, want a fatal error containing %q", c.name, err, c.want)
		}
	}
	if _, err := r.Put(ctx, "failing", io.MultiReader(iotestErrReader{}), -1); !errors.Is(err, errBody) {
		t.Fatalf("the body's own error is not visible with errors.Is: %v", err)
	}
	if _, err := r.Put(ctx, "x", nil, 0); storage.KindOf(err) != storage.KindFatal {
		t.Fatalf("nil body: %v", err)
	}
	if _, err := r.Put(ctx, "x", strings.NewReader(""), -2); storage.KindOf(err) != storage.KindFatal {
		t.Fatalf("size -2: %v", err)
	}
}

var errBody = errors.New("the producer broke")

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errBody }

func TestClosedRelayRefusesCalls(t *testing.T) {
	testConfig(t)
	r, err := storage.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := r.Put(context.Background(), "x", bytes.NewReader(nil), 0); storage.KindOf(err) != storage.KindFatal ||
		!strings.Contains(err.Error(), "closed") {
		t.Fatalf("put after close: %v", err)
	}
	if _, err := r.List(context.Background(), ""); err == nil {
		t.Fatal("list after close succeeded")
	}
}

func TestReaderErrorsAreClassified(t *testing.T) {
	testConfig(t)
	r := openRelay(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := r.Put(ctx, "x", bytes.NewReader(make([]byte, 1<<20)), 1<<20); err != nil {
		t.Fatal(err)
	}
	rc, err := r.Open(ctx, "x", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := rc.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.ReadAll(rc)
	var se *storage.Error
	if !errors.As(err, &se) || se.Op != "read" || se.Name != "x" || !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %#v, want a *storage.Error for read x wrapping context.Canceled", err)
	}
}
