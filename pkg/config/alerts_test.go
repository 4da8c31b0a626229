package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestAlertKeys(t *testing.T) {
	o := testOpts(t, env{})
	cfg, err := Parse("/etc/test/escale.toml", []byte(minimal), o)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SMTPServer != "localhost:25" || cfg.SMTPFrom != "escale@test-host" || cfg.AlertInterval != time.Hour ||
		cfg.SMTPUser != "" || cfg.SMTPPasswordFile != "" || cfg.Repositories[0].OnError != "" || cfg.Repositories[0].Maintainer != "" {
		t.Errorf("alert defaults: %+v %+v", cfg, cfg.Repositories[0])
	}
	if cfg.Origin("smtp_server") != "default" || cfg.Origin("alert_interval") != "default" {
		t.Errorf("origins: %v", cfg.origin)
	}

	file := `
smtp_server = "mail.example.org"
smtp_from = "Escale <robot@example.org>"
smtp_user = "robot"
smtp_password_file = "smtp.pass"
alert_interval = "30m"
on_error = "logger -t escale \"$ESCALE_ERROR\""
maintainer = "admin@example.org"

[repository.work]
path = "/data/work"
relay = "remote:work"

[repository.home]
path = "/data/home"
relay = "remote:home"
on_error = "true"
maintainer = "me@example.org, you@example.org"
`
	cfg, err = Parse("/etc/test/escale.toml", []byte(file), o)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SMTPServer != "mail.example.org:25" || cfg.SMTPFrom != "Escale <robot@example.org>" || cfg.SMTPUser != "robot" ||
		cfg.SMTPPasswordFile != "/etc/test/smtp.pass" || cfg.AlertInterval != 30*time.Minute {
		t.Errorf("globals: %+v", cfg)
	}
	home, work := cfg.Repository("home"), cfg.Repository("work")
	if work.OnError != `logger -t escale "$ESCALE_ERROR"` || work.Maintainer != "admin@example.org" || work.Origin("on_error") != "top level" {
		t.Errorf("inherited alert keys: %+v", work)
	}
	if home.OnError != "true" || home.Maintainer != "me@example.org, you@example.org" || home.Origin("maintainer") != "" {
		t.Errorf("overridden alert keys: %+v", home)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"alert_interval":"30m"`) || !strings.Contains(string(b), `"smtp_server":"mail.example.org:25"`) ||
		!strings.Contains(string(b), `"maintainer":"admin@example.org"`) {
		t.Errorf("JSON: %s", b)
	}

	// The environment overrides the global alert keys.
	cfg, err = Parse("/etc/test/escale.toml", []byte(minimal), testOpts(t, env{"ESCALE_SMTP_SERVER": "[::1]:2525", "ESCALE_ALERT_INTERVAL": "0s"}))
	if err != nil || cfg.SMTPServer != "[::1]:2525" || cfg.AlertInterval != 0 {
		t.Errorf("env overrides: %+v, %v", cfg, err)
	}
}

func TestAlertKeyProblems(t *testing.T) {
	cases := []struct{ file, key, msg string }{
		{`smtp_server = "mail:smtp:25"`, "smtp_server", "is not a mail server address"},
		{`smtp_server = "mail:99999"`, "smtp_server", "is not a mail server address"},
		{`smtp_from = "not an address"`, "smtp_from", "is not an email address"},
		{`maintainer = "root"`, "maintainer", `"root" is not an email address`},
		{`alert_interval = "-5m"`, "alert_interval", "is not a duration"},
		{`alert_interval = 60`, "alert_interval", "expected a duration"},
		{`on_error = true`, "on_error", "expected a shell command"},
		{`smtp_user = "robot"`, "smtp_user", "smtp_password_file is not"},
		{`smtp_password_file = "pw"`, "smtp_password_file", "smtp_user is not"},
		{"[repository.x]\npath = \"/x\"\nrelay = \"r:x\"\nsmtp_server = \"a:25\"", "repository.x.smtp_server", "is a global key"},
	}
	for _, c := range cases {
		ps := problems(t, c.file+"\n"+minimal, testOpts(t, env{}))
		found := false
		for _, p := range ps {
			if p.Key == c.key && strings.Contains(p.Msg, c.msg) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: problems %+v, want %s: …%s…", c.file, ps, c.key, c.msg)
		}
	}
	// The original's "email" option points to the new key.
	ps := problems(t, "email = \"a@b.c\"\n"+minimal, testOpts(t, env{}))
	if len(ps) != 1 || !strings.Contains(ps[0].Msg, `use "maintainer"`) {
		t.Errorf("email hint: %+v", ps)
	}
}
