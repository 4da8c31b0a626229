package config

import (
	"os"
	"testing"
)

// The example shipped in configs/ must always load.
func TestShippedExampleLoads(t *testing.T) {
	data, err := os.ReadFile("../../configs/escale.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse("configs/escale.toml", data, LoadOptions{Home: t.TempDir(), Getenv: func(string) string { return "" }, Environ: func() []string { return nil }})
	if err != nil {
		t.Fatalf("the shipped example does not load: %v", err)
	}
	if len(cfg.Repositories) != 2 || cfg.Repository("photos").Mode != ModeUpload {
		t.Fatalf("unexpected example: %+v", cfg.Repositories)
	}
}
