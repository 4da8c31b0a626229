package config

import (
	"strings"
	"testing"
	"time"
)

func TestSettleKey(t *testing.T) {
	cfg, err := Parse("/etc/test/escale.toml", []byte(minimal), testOpts(t, env{}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Settle != time.Second || cfg.Origin("settle") != "default" {
		t.Errorf("settle default: %v (%s)", cfg.Settle, cfg.Origin("settle"))
	}
	cfg, err = Parse("/etc/test/escale.toml", []byte("settle = \"5s\"\n"+minimal), testOpts(t, env{}))
	if err != nil || cfg.Settle != 5*time.Second {
		t.Fatalf("settle = 5s: %v, %v", cfg.Settle, err)
	}
	cfg, err = Parse("/etc/test/escale.toml", []byte(minimal), testOpts(t, env{"ESCALE_SETTLE": "0s"}))
	if err != nil || cfg.Settle != 0 || !strings.Contains(cfg.Origin("settle"), "ESCALE_SETTLE") {
		t.Fatalf("ESCALE_SETTLE=0s: %v (%s), %v", cfg.Settle, cfg.Origin("settle"), err)
	}
	for _, bad := range []string{`settle = "-1s"`, `settle = "2h"`, `settle = "soon"`} {
		ps := problems(t, bad+"\n"+minimal, testOpts(t, env{}))
		if len(ps) != 1 || ps[0].Key != "settle" {
			t.Errorf("%s: problems %v", bad, ps)
		}
	}
}
