package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/storage"
)

func TestMain(m *testing.M) {
	if err := storage.Init(storage.Options{RcloneConfig: filepath.Join(os.TempDir(), "escale-daemon-test-none.conf")}); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// clientConfig is one client's configuration: repository "good" on a shared
// relay, and repository "broken" whose relay names a missing remote.
func clientConfig(t *testing.T, root, name string) *config.Config {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Join(dir, "folder"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "other"), 0o755); err != nil {
		t.Fatal(err)
	}
	pass := filepath.Join(root, "pass")
	if err := os.WriteFile(pass, []byte("daemon test words\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := `state_dir = "` + filepath.Join(dir, "state") + `"
[repository.good]
path = "` + filepath.Join(dir, "folder") + `"
relay = "` + filepath.Join(root, "relay") + `"
client = "` + name + `"
passphrase_file = "` + pass + `"
min_poll = "200ms"
max_poll = "1s"

[repository.broken]
path = "` + filepath.Join(dir, "other") + `"
relay = "no-such-remote:relay"
client = "` + name + `"
passphrase_file = "` + pass + `"
`
	cfg, err := config.Parse(filepath.Join(dir, "escale.toml"), []byte(body), config.LoadOptions{Home: root})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestDaemonsSyncAndIsolateFailures(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "relay"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var mu sync.Mutex
	brokenErrors := 0
	report := func(o Outcome) {
		if o.Repo == "broken" && o.Err != nil {
			mu.Lock()
			brokenErrors++
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for _, name := range []string{"alpha", "beta"} {
		cfg := clientConfig(t, root, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := Run(ctx, cfg, Options{Logger: log}, report); err != nil {
				t.Error(err)
			}
		}()
	}
	// An edit on alpha while both daemons run arrives on beta by itself.
	time.Sleep(300 * time.Millisecond)
	src := filepath.Join(root, "alpha", "folder", "live.txt")
	if err := os.WriteFile(src, []byte("written while running"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(root, "beta", "folder", "live.txt")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if data, err := os.ReadFile(dst); err == nil && string(data) == "written while running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the file never arrived on beta")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if brokenErrors == 0 {
		t.Fatal("the broken repository reported no error")
	}
}

func TestPollerBacksOffAndResets(t *testing.T) {
	p := newPoller(time.Second, 8*time.Second)
	var got []time.Duration
	for _, busy := range []bool{false, false, false, false, false, true, false} {
		got = append(got, p.next(busy))
	}
	want := []time.Duration{1, 2, 4, 8, 8, 1, 2}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("intervals %v, want %v seconds", got, want)
		}
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) { l.t.Log(string(p)); return len(p), nil }
