package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	smithy "github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/pkg/sftp"
	"github.com/rclone/rclone/backend/webdav/api"
	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/fserrors"
	"github.com/rclone/rclone/lib/rest"
)

// realErrors produces errors the way rclone, the OS and the network do.
func realErrors(t *testing.T) map[string]struct {
	err  error
	want Kind
} {
	t.Helper()
	ctx := context.Background()
	_, statErr := os.Stat(filepath.Join(t.TempDir(), "missing"))

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	_, dialErr := net.Dial("tcp", closedAddr)
	_, httpErr := http.Get("http://" + closedAddr + "/")
	_, dialTimeout := (&net.Dialer{Deadline: time.Now().Add(-time.Second)}).Dial("tcp", "127.0.0.1:9")

	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_ = a.SetReadDeadline(time.Now().Add(-time.Second))
	_, readTimeout := a.Read(make([]byte, 1))

	resetErr := connectionReset(t)

	deadlineCtx, cancel := context.WithTimeout(ctx, -time.Second)
	defer cancel()

	restErr := func(status int) error {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "server says no", status)
		}))
		defer srv.Close()
		_, err := rest.NewClient(srv.Client()).Call(ctx, &rest.Opts{Method: "GET", RootURL: srv.URL})
		if err == nil {
			t.Fatalf("rest call to a %d server succeeded", status)
		}
		return err
	}
	s3Err := func(status int, code string) error {
		return &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: "s3 says no"},
		}
	}
	dav := func(status int) error {
		return &api.Error{Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), StatusCode: status}
	}
	path := func(errno syscall.Errno) error { return &os.PathError{Op: "write", Path: "/relay/x", Err: errno} }

	return map[string]struct {
		err  error
		want Kind
	}{
		"os stat missing":           {statErr, KindNotFound},
		"rclone object not found":   {fmt.Errorf("stat: %w", fs.ErrorObjectNotFound), KindNotFound},
		"rclone dir not found":      {fs.ErrorDirNotFound, KindNotFound},
		"webdav 404":                {dav(404), KindNotFound},
		"rest 404":                  {restErr(404), KindNotFound},
		"sftp no such file":         {&sftp.StatusError{Code: 2}, KindNotFound},
		"ftp 550 missing":           {&textproto.Error{Code: 550, Msg: "Failed to open file."}, KindNotFound},
		"s3 NoSuchKey":              {s3Err(404, "NoSuchKey"), KindNotFound},
		"ENOSPC":                    {path(syscall.ENOSPC), KindQuota},
		"EDQUOT":                    {path(syscall.EDQUOT), KindQuota},
		"webdav 507":                {dav(507), KindQuota},
		"rest 507":                  {restErr(507), KindQuota},
		"webdav 413":                {dav(413), KindQuota},
		"ftp 552":                   {&textproto.Error{Code: 552, Msg: "Exceeded storage allocation"}, KindQuota},
		"sftp quota":                {&sftp.StatusError{Code: 15}, KindQuota},
		"quota message":             {errors.New("upload failed: user quota exceeded"), KindQuota},
		"insufficient storage":      {errors.New("Insufficient Storage on server"), KindQuota},
		"EACCES":                    {path(syscall.EACCES), KindAuth},
		"EPERM":                     {path(syscall.EPERM), KindAuth},
		"webdav 401":                {dav(401), KindAuth},
		"rest 403":                  {restErr(403), KindAuth},
		"s3 AccessDenied":           {s3Err(403, "AccessDenied"), KindAuth},
		"ftp 530":                   {&textproto.Error{Code: 530, Msg: "Login incorrect."}, KindAuth},
		"ftp 550 denied":            {&textproto.Error{Code: 550, Msg: "Permission denied."}, KindAuth},
		"sftp permission":           {&sftp.StatusError{Code: 3}, KindAuth},
		"ssh auth":                  {errors.New("couldn't connect SSH: ssh: handshake failed: ssh: unable to authenticate, attempted methods [none password], no supported methods remain"), KindAuth},
		"dial refused":              {dialErr, KindUnreachable},
		"http refused":              {httpErr, KindUnreachable},
		"dial timeout":              {dialTimeout, KindTransient},
		"dns":                       {&net.DNSError{Err: "no such host", Name: "relay.invalid", IsNotFound: true}, KindUnreachable},
		"refused as text":           {errors.New("NewFs: dial tcp 10.0.0.1:21: connect: connection refused"), KindUnreachable},
		"read timeout":              {readTimeout, KindTransient},
		"connection reset":          {resetErr, KindTransient},
		"unexpected EOF":            {fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), KindTransient},
		"deadline":                  {deadlineCtx.Err(), KindTransient},
		"webdav 503":                {dav(503), KindTransient},
		"webdav 429":                {dav(429), KindTransient},
		"rest 500":                  {restErr(500), KindTransient},
		"s3 SlowDown":               {s3Err(503, "SlowDown"), KindTransient},
		"ftp 421":                   {&textproto.Error{Code: 421, Msg: "Too many connections"}, KindTransient},
		"ftp 426":                   {&textproto.Error{Code: 426, Msg: "Failure reading network stream."}, KindTransient},
		"sftp connection lost":      {sftp.ErrSSHFxConnectionLost, KindTransient},
		"rclone retry error":        {fserrors.RetryErrorf("pacer says again"), KindTransient},
		"rclone retry after":        {fserrors.NewErrorRetryAfter(time.Second), KindTransient},
		"rclone can't move":         {fs.ErrorCantMove, KindUnsupported},
		"rclone not implemented":    {fs.ErrorNotImplemented, KindUnsupported},
		"rclone can't upload empty": {fs.ErrorCantUploadEmptyFiles, KindUnsupported},
		"webdav 405":                {dav(405), KindUnsupported},
		"s3 precondition":           {s3Err(412, "PreconditionFailed"), KindExists},
		"missing remote":            {fmt.Errorf("%w (%q)", fs.ErrorNotFoundInConfigFile, "x"), KindFatal},
		"rclone no retry":           {fserrors.NoRetryError(errors.New("corrupted on transfer")), KindFatal},
		"upload stored short":       {errors.New("corrupted on transfer: sizes differ src 65545 vs dst(ftp://127.0.0.1:2121/relay) 0"), KindTransient},
		"webdav 409":                {dav(409), KindFatal},
		"unknown":                   {errors.New("something odd"), KindFatal},
		"storage error keeps kind":  {&Error{Op: "put", Kind: KindQuota, Err: errors.New("x")}, KindQuota},
	}
}

// connectionReset gets a real ECONNRESET: the peer closes with SO_LINGER 0.
func connectionReset(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		_, _ = c.Read(make([]byte, 1)) // close only once the client is talking
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Skipf("could not provoke a connection reset: %v", err)
	}
	return err
}

func TestClassify(t *testing.T) {
	for name, c := range realErrors(t) {
		if got := classify(c.err); got != c.want {
			t.Errorf("%s: classify(%v) = %s, want %s", name, c.err, got, c.want)
		}
	}
}

func TestErrorMessageAndSentinels(t *testing.T) {
	err := &Error{Op: "put", Name: "a/b", Kind: KindAuth, Err: errors.New("401 Unauthorized")}
	msg := err.Error()
	if !strings.HasPrefix(msg, "put a/b: access denied: 401 Unauthorized") || !strings.Contains(msg, "credentials") {
		t.Fatalf("message %q", msg)
	}
	if !errors.Is(err, ErrAuth) || errors.Is(err, ErrNotFound) {
		t.Fatal("sentinel matching is wrong")
	}
	if KindOf(fmt.Errorf("wrapped: %w", err)) != KindAuth || KindOf(errors.New("x")) != KindFatal {
		t.Fatal("KindOf is wrong")
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "a/b", "dir/file.txt", "with space", "日本語/✓", "..a", "a..", ".hidden", "a/.b"} {
		if err := checkName(ok, false); err != nil {
			t.Errorf("checkName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/a", "a/", "a//b", ".", "..", "a/../b", "../a", "a/..", "./a",
		"a\x00b", "a\nb", "a\rb", "a\x7fb", `a\b`, "\xff"} {
		if err := checkName(bad, false); !errors.Is(err, ErrInvalidName) {
			t.Errorf("checkName(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	if checkName("", true) != nil {
		t.Error(`"" must be allowed as a folder (the relay root)`)
	}
}

func TestIsLocalSpec(t *testing.T) {
	for spec, want := range map[string]bool{
		"/abs/dir": true, "./rel": true, "../up": true, ".": true, "relay": true,
		"remote:path": false, "remote:": false, ":sftp,host=h:path": false, ":memory:": false,
	} {
		if got := isLocalSpec(spec); got != want {
			t.Errorf("isLocalSpec(%q) = %v, want %v", spec, got, want)
		}
	}
}

func TestRangeOptions(t *testing.T) {
	for _, c := range []struct {
		size, off, length int64
		start, end        int64 // -2: no range option (whole object)
		empty             bool
	}{
		{100, 0, -1, -2, -2, false},
		{100, 0, 100, -2, -2, false},
		{100, 0, 1000, -2, -2, false},
		{100, 10, -1, 10, 99, false},
		{100, 10, 5, 10, 14, false},
		{100, 95, 10, 95, 99, false},
		{100, 100, 1, 0, 0, true},
		{100, 500, -1, 0, 0, true},
		{100, 3, 0, 0, 0, true},
		{-1, 10, 5, 10, 14, false},
		{-1, 10, -1, 10, -1, false},
	} {
		opts, empty := rangeOptions(c.size, c.off, c.length)
		if empty != c.empty {
			t.Fatalf("%+v: empty %v", c, empty)
		}
		if empty {
			continue
		}
		if c.start == -2 {
			if len(opts) != 0 {
				t.Fatalf("%+v: want the whole object, got %v", c, opts)
			}
			continue
		}
		r, ok := opts[0].(*fs.RangeOption)
		if len(opts) != 1 || !ok || r.Start != c.start || r.End != c.end {
			t.Fatalf("%+v: got %v", c, opts)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	c := defaultOpenConfig()
	c.minBackoff, c.maxBackoff = 100*time.Millisecond, time.Second
	for attempt := 1; attempt <= 20; attempt++ {
		full := min(c.minBackoff<<(attempt-1), c.maxBackoff)
		if attempt > 10 {
			full = c.maxBackoff
		}
		for range 50 {
			d := c.backoff(attempt, errors.New("x"))
			if d < full/2 || d > full {
				t.Fatalf("attempt %d: backoff %v outside [%v, %v]", attempt, d, full/2, full)
			}
		}
	}
	// A server's Retry-After is honoured, up to a cap.
	if d := c.backoff(1, fserrors.NewErrorRetryAfter(3*time.Second)); d < 2*time.Second {
		t.Fatalf("Retry-After 3s gave a backoff of %v", d)
	}
	if d := c.backoff(1, fserrors.NewErrorRetryAfter(time.Hour)); d > maxRetryAfter {
		t.Fatalf("Retry-After 1h gave a backoff of %v, cap %v", d, maxRetryAfter)
	}
}

func TestRedactSpec(t *testing.T) {
	for spec, secrets := range map[string][]string{
		":sftp,host=h,user=u,pass=OBSCURED,key_pem='-----BEGIN KEY-----':path": {"OBSCURED", "BEGIN KEY"},
		":webdav,url='https://me:pw@dav.example/x',bearer_token=TOKEN:":        {"pw@", "TOKEN"},
		":s3,access_key_id=AKID,secret_access_key=SAK:bucket":                  {"AKID", "SAK"},
		":sftp,host=h,pass=p':bad-syntax":                                      {"p'"},
	} {
		got := redactSpec(spec)
		for _, s := range secrets {
			if strings.Contains(got, s) {
				t.Errorf("redactSpec(%q) = %q shows %q", spec, got, s)
			}
		}
	}
	if got := redactSpec("remote:path/to"); got != "remote:path/to" {
		t.Errorf("a plain remote was changed: %q", got)
	}
	if got := redactSpec(":sftp,host=relay.example,port=22:dir"); !strings.Contains(got, "relay.example") || !strings.HasSuffix(got, ":dir") {
		t.Errorf("non-secret options lost: %q", got)
	}
}
