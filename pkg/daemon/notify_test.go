package daemon

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNotifierSpeaksSdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	env := map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "200000"}
	n := NewNotifier(func(k string) string { return env[k] })
	if err := n.Send("READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	k, err := conn.Read(buf)
	if err != nil || string(buf[:k]) != "READY=1" {
		t.Fatalf("got %q, %v", buf[:k], err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go n.Watchdog(ctx)
	k, err = conn.Read(buf)
	cancel()
	if err != nil || !strings.HasPrefix(string(buf[:k]), "WATCHDOG=1") {
		t.Fatalf("watchdog: got %q, %v", buf[:k], err)
	}
}

func TestNotifierWithoutSocketIsSilent(t *testing.T) {
	n := NewNotifier(func(string) string { return "" })
	if err := n.Send("READY=1"); err != nil {
		t.Fatal(err)
	}
}
