package alert

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// MailOptions say how alert mail is sent.
type MailOptions struct {
	// Server is host:port. Port 465 is implicit TLS; on any other port
	// STARTTLS is used when the server offers it.
	Server string
	From   string
	// User and PasswordFile authenticate; the file's first line is the
	// password, read at each send so it can be rotated.
	User, PasswordFile string
	// TLSConfig overrides the TLS settings (tests trust their own CA);
	// nil = the system's roots, server name from Server.
	TLSConfig *tls.Config
	// Timeout bounds one delivery; default 30s.
	Timeout time.Duration
}

// mail sends the mail for ev in the background.
func (n *Notifier) mail(t Target, ev Event, msg string, since, at time.Time) {
	subject, body := compose(t, ev, msg, since, at, n.opts.Interval)
	n.background(func() {
		if err := send(n.opts.Mail, t.Maintainer, subject, body); err != nil {
			n.log.Warn("cannot send the alert mail; check smtp_server (and smtp_user) or run a mail server on this machine",
				"repo", t.Repo, "to", t.Maintainer, "server", n.opts.Mail.Server, "err", err)
			return
		}
		n.log.Info("alert mail sent", "repo", t.Repo, "to", t.Maintainer, "event", string(ev))
	})
}

// compose writes the subject and the plain-text body of an alert.
func compose(t Target, ev Event, msg string, since, at time.Time, interval time.Duration) (string, string) {
	var b strings.Builder
	stamp := func(x time.Time) string { return x.UTC().Format("2006-01-02 15:04:05 UTC") }
	if ev == Recovered {
		fmt.Fprintf(&b, "Repository %q syncs again on client %q.\n\n", t.Repo, t.Client)
		fmt.Fprintf(&b, "Recovered at: %s\nFailing since: %s (%s)\nLast error: %s\n\n", stamp(at), stamp(since), at.Sub(since).Round(time.Second), msg)
		b.WriteString("Nothing to do. `escale status " + t.Repo + "` on that machine shows the current state.\n")
		return fmt.Sprintf("escale: repository %s recovered on %s", t.Repo, t.Client), b.String()
	}
	fmt.Fprintf(&b, "Repository %q cannot sync on client %q.\n\n", t.Repo, t.Client)
	fmt.Fprintf(&b, "Error: %s\nTime: %s\nFailing since: %s\n\n", msg, stamp(at), stamp(since))
	b.WriteString("What to do:\n")
	b.WriteString("  - read the error above: it usually says what to fix (the relay unreachable, a full quota, a wrong key);\n")
	fmt.Fprintf(&b, "  - on that machine, `escale status %s` shows the last rounds and `escale sync --once --repo %s` retries by hand;\n", t.Repo, t.Repo)
	b.WriteString("  - the log (log_file) has the details.\n\n")
	b.WriteString("escale keeps retrying by itself. You get another mail if the error changes")
	if interval > 0 {
		fmt.Fprintf(&b, " (at most one every %s)", interval)
	}
	b.WriteString(", and one when the repository syncs again.\n")
	return fmt.Sprintf("escale: repository %s failed on %s", t.Repo, t.Client), b.String()
}

// send delivers one message.
func send(o MailOptions, to, subject, body string) error {
	host, portText, err := net.SplitHostPort(o.Server)
	if err != nil {
		return fmt.Errorf("smtp_server %q: %w", o.Server, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("smtp_server %q: bad port", o.Server)
	}
	m := gomail.NewMsg()
	if err := m.From(o.From); err != nil {
		return fmt.Errorf("smtp_from %q: %w", o.From, err)
	}
	var rcpts []string
	for _, a := range strings.Split(to, ",") {
		if a = strings.TrimSpace(a); a != "" {
			rcpts = append(rcpts, a)
		}
	}
	if err := m.To(rcpts...); err != nil {
		return fmt.Errorf("maintainer %q: %w", to, err)
	}
	m.Subject(subject)
	m.SetDate()
	m.SetMessageID()
	m.SetBodyString(gomail.TypeTextPlain, body)

	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	tlsConf := o.TLSConfig
	if tlsConf == nil {
		tlsConf = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	opts := []gomail.Option{gomail.WithPort(port), gomail.WithTimeout(timeout), gomail.WithTLSConfig(tlsConf)}
	if port == 465 {
		opts = append(opts, gomail.WithSSL())
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if o.User != "" {
		pw, err := readPassword(o.PasswordFile)
		if err != nil {
			return err
		}
		// Auto-discovery picks the strongest mechanism offered and refuses
		// to send a password in clear over an unencrypted connection.
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover), gomail.WithUsername(o.User), gomail.WithPassword(pw))
	}
	c, err := gomail.NewClient(host, opts...)
	if err != nil {
		return fmt.Errorf("mail client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return fmt.Errorf("send through %s: %w", o.Server, err)
	}
	return nil
}

// readPassword reads the first line of the SMTP password file.
func readPassword(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("smtp_password_file: %w", err)
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	pw := strings.TrimRight(string(line), "\r")
	if pw == "" {
		return "", fmt.Errorf("smtp_password_file %s: the first line is empty; write the password there", path)
	}
	return pw, nil
}
