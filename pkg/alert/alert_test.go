package alert

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuf collects log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func skipWithoutShell(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the hooks below are sh scripts")
	}
}

// hookLines reads what the test hook appended, one line per call.
func hookLines(t *testing.T, p string) []string {
	t.Helper()
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(data), "\n"), "\n")
}

func TestEpisodesCommandAndMail(t *testing.T) {
	skipWithoutShell(t)
	dir := t.TempDir()
	srv := startSMTP(t, nil, nil)
	hook := filepath.Join(dir, "hook.log")
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	logs := &logBuf{}
	newNotifier := func() *Notifier {
		return New(Options{
			Mail:      MailOptions{Server: srv.Addr, From: "escale@test-host"},
			Interval:  time.Hour,
			StateFile: func(repo string) string { return filepath.Join(dir, repo, "alert.json") },
			Logger:    slog.New(slog.NewTextHandler(logs, nil)),
			Now:       clk.now,
		})
	}
	n := newNotifier()
	tg := Target{Repo: "work", Client: "laptop", Maintainer: "admin@example.org, other@example.org",
		OnError: `echo "$ESCALE_EVENT|$ESCALE_REPOSITORY|$ESCALE_CLIENT|$ESCALE_ERROR" >> ` + hook}
	step := func(err error) {
		t.Helper()
		n.Observe(tg, err)
		n.Wait()
	}
	relayDown := errors.New("relay unreachable: connection refused")
	quota := errors.New("quota of 2GB reached")

	step(nil) // a success with nothing on record says nothing
	if l := hookLines(t, hook); len(l) != 0 || len(srv.messages()) != 0 {
		t.Fatalf("a success alerted: %q %d mails", l, len(srv.messages()))
	}
	step(relayDown)
	step(relayDown) // the same error again: the same episode
	if l := hookLines(t, hook); len(l) != 1 || l[0] != "failed|work|laptop|"+relayDown.Error() {
		t.Fatalf("hook calls %q, want one failed call", l)
	}
	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d mails, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Subject != "escale: repository work failed on laptop" || m.From != "escale@test-host" ||
		strings.Join(m.To, ",") != "admin@example.org,other@example.org" {
		t.Errorf("mail: subject %q from %q to %q", m.Subject, m.From, m.To)
	}
	for _, want := range []string{relayDown.Error(), "2026-03-01 12:00:00 UTC", "escale status work", `client "laptop"`, "at most one every 1h0m0s"} {
		if !strings.Contains(m.Body, want) {
			t.Errorf("mail body lacks %q:\n%s", want, m.Body)
		}
	}

	// A new error within the hour: the hook runs, the mail waits.
	clk.add(10 * time.Minute)
	step(quota)
	if l := hookLines(t, hook); len(l) != 2 || l[1] != "failed|work|laptop|"+quota.Error() {
		t.Fatalf("hook calls %q, want a second failed call", l)
	}
	if len(srv.messages()) != 1 {
		t.Fatalf("a mail within alert_interval went out")
	}
	if !strings.Contains(logs.String(), "held back by alert_interval") {
		t.Errorf("the held-back mail is not logged:\n%s", logs)
	}
	// Once the hour has passed, the next failed round sends it, without
	// running the hook again.
	clk.add(time.Hour)
	step(quota)
	if msgs := srv.messages(); len(msgs) != 2 || !strings.Contains(msgs[1].Body, quota.Error()) {
		t.Fatalf("the held-back mail was not sent: %d mails", len(msgs))
	}
	if l := hookLines(t, hook); len(l) != 2 {
		t.Fatalf("hook ran again for the same error: %q", l)
	}

	// A restarted daemon (or the next cron run) continues the episode.
	n = newNotifier()
	step(quota)
	if l := hookLines(t, hook); len(l) != 2 || len(srv.messages()) != 2 {
		t.Fatalf("a restart repeated the alert: %q, %d mails", l, len(srv.messages()))
	}
	clk.add(time.Minute)
	step(nil)
	step(nil)
	if l := hookLines(t, hook); len(l) != 3 || l[2] != "recovered|work|laptop|"+quota.Error() {
		t.Fatalf("hook calls %q, want a recovered call", l)
	}
	msgs = srv.messages()
	if len(msgs) != 3 || msgs[2].Subject != "escale: repository work recovered on laptop" || !strings.Contains(msgs[2].Body, "1h11m0s") {
		t.Fatalf("recovery mail: %+v", msgs[len(msgs)-1])
	}

	// A new failure soon after: the hook runs, the mail waits for the hour
	// since the last failure mail; a recovery before that mails nothing,
	// since nobody was told of that failure.
	step(relayDown)
	step(nil)
	if l := hookLines(t, hook); len(l) != 5 {
		t.Fatalf("hook calls %q, want failed and recovered again", l)
	}
	if len(srv.messages()) != 3 {
		t.Fatalf("%d mails, want still 3", len(srv.messages()))
	}
	// A cancelled round is no failure.
	step(context.Canceled)
	if l := hookLines(t, hook); len(l) != 5 {
		t.Fatalf("a cancelled round alerted: %q", l)
	}
}

func TestCommandOutputAndFailureLogged(t *testing.T) {
	skipWithoutShell(t)
	logs := &logBuf{}
	n := New(Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	n.Observe(Target{Repo: "a", OnError: `echo "told $ESCALE_REPOSITORY"`}, errors.New("x"))
	n.Observe(Target{Repo: "b", OnError: "echo oops >&2; exit 3"}, errors.New("y"))
	n.Wait()
	out := logs.String()
	if !strings.Contains(out, `"on_error command ran"`) || !strings.Contains(out, `output="told a"`) {
		t.Errorf("success not logged with its output:\n%s", out)
	}
	if !strings.Contains(out, "on_error command failed") || !strings.Contains(out, "exit status 3") || !strings.Contains(out, "output=oops") {
		t.Errorf("failure not logged with its output:\n%s", out)
	}
}

func TestMailFailureIsOnlyLogged(t *testing.T) {
	l, err := closedAddr()
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuf{}
	n := New(Options{Mail: MailOptions{Server: l, From: "escale@h", Timeout: 5 * time.Second}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	n.Observe(Target{Repo: "r", Client: "c", Maintainer: "a@b.c"}, errors.New("down"))
	n.Wait()
	if !strings.Contains(logs.String(), "cannot send the alert mail") {
		t.Fatalf("the failed delivery is not logged:\n%s", logs)
	}
}

func TestMailSTARTTLSAndAuth(t *testing.T) {
	serverTLS, roots := testCA(t)
	srv := startSMTP(t, serverTLS, map[string]string{"robot": "s3cret"})
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := MailOptions{Server: srv.Addr, From: "Escale <escale@example.org>", User: "robot", PasswordFile: pw,
		TLSConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}
	if err := send(o, "admin@example.org", "subject", "body"); err != nil {
		t.Fatal(err)
	}
	msgs := srv.messages()
	if len(msgs) != 1 || !msgs[0].TLS || msgs[0].AuthAs != "robot" || msgs[0].Subject != "subject" {
		t.Fatalf("received %+v, want one message over TLS, authenticated as robot", msgs)
	}
	// A wrong password is an error, never a silent success.
	if err := os.WriteFile(pw, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := send(o, "admin@example.org", "subject", "body"); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	// A certificate the client does not trust stops the delivery: STARTTLS
	// is not downgraded to clear text.
	o.TLSConfig = &tls.Config{ServerName: "127.0.0.1"}
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := send(o, "admin@example.org", "subject", "body"); err == nil {
		t.Fatal("mail went out through a server whose certificate is not trusted")
	}
}
