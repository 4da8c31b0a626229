package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the test binary act as the escale command inside the
// scripts: testscript runs it again with os.Args[0] = "escale".
func TestMain(m *testing.M) {
	// The tests write files and sync at once: no settle time (the engine's
	// tests cover it).
	os.Setenv("ESCALE_SETTLE", "0s")
	testscript.Main(m, map[string]func(){
		"escale": func() { os.Exit(Main(os.Args, os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the command-line stories in testdata/script: each
// command's output and exit code, good and bad. Scripts that sync use age
// identity files (key_file), which unlock without scrypt's deliberate cost.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			// A home of the script's own: default state, config and
			// rclone.conf paths land in $WORK, never in the real home.
			home := filepath.Join(e.WorkDir, "home")
			e.Setenv("HOME", home)
			e.Setenv("ESCALE_SETTLE", "0s")
			e.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
			e.Setenv("XDG_STATE_HOME", filepath.Join(home, ".local", "state"))
			return os.MkdirAll(home, 0o755)
		},
	})
}
