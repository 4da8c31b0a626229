package engine

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/storage"
)

// TestRotationLocksOutRemovedClient: after `key remove` + `key rotate`, the
// removed client opens nothing written later, the others keep syncing
// without re-sending anything, and once they have all run a round and the
// old data is collected the old epoch leaves every slot.
func TestRotationLocksOutRemovedClient(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	a := w.client("alpha")
	idC, _ := age.GenerateX25519Identity()
	if _, err := a.e.repo.AddIdentity(ctx, idC.Recipient(), "gamma"); err != nil {
		t.Fatal(err)
	}
	b := w.client("beta")
	c := w.client("gamma", func(o *Options) { o.Credentials = protocol.Credentials{Identity: idC} })

	big := randomBytes(t, 3<<20)
	if err := os.WriteFile(filepath.Join(a.dir, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	a.write("small.txt", "before the rotation\n", time.Time{})
	for range 2 {
		a.round()
		b.round()
		c.round()
	}
	sameTrees(t, a, b)
	sameTrees(t, a, c)
	oldKeys := c.e.repo.Keyrings()
	cids := []string{a.e.CID(), b.e.CID()}
	before := w.relayFiles()

	// The admin (alpha) removes gamma's key, rotates, and drops gamma's
	// records as the admin "drop a client" operation would.
	if _, err := a.e.repo.RemoveSlot(ctx, "gamma"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.e.repo.Rotate(ctx, protocol.RewriteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The removed client never runs again: its records go (key prune --forget).
	if n, err := a.e.repo.ForgetClient(ctx, "gamma"); err != nil || n == 0 {
		t.Fatalf("forget gamma: %d objects, %v", n, err)
	}
	for name := range w.relayFiles() {
		if strings.HasPrefix(name, protocol.ClientDir(c.e.CID())+"/") || strings.HasPrefix(name, "heads/"+c.e.CID()+".") {
			t.Fatalf("%s of the forgotten client is still on the relay", name)
		}
	}

	// Changing one byte of the big file re-sends one or two chunks, not the file.
	big[1<<20] ^= 1
	if err := os.WriteFile(filepath.Join(a.dir, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	a.write("after.txt", "written after the rotation\n", time.Time{})
	ra := a.round()
	rb := b.round()
	if ra.BytesUp > 5<<20/2 || rb.BytesDown > 5<<20/2 {
		t.Fatalf("after the rotation alpha sent %d bytes and beta fetched %d: the rotation made them re-send", ra.BytesUp, rb.BytesDown)
	}
	if got, _ := b.read("after.txt"); got != "written after the rotation\n" {
		t.Fatalf("beta did not get the post-rotation file: %q", got)
	}
	sameTrees(t, a, b)
	if !slices.Equal(cids, []string{a.e.CID(), b.e.CID()}) {
		t.Fatal("client ids changed with the rotation")
	}

	// The removed client is told, running or restarted.
	if _, err := c.e.Round(ctx); !errors.Is(err, protocol.ErrKeyRemoved) {
		t.Fatalf("removed client's round: %v, want ErrKeyRemoved", err)
	}
	c.e.Close()
	if _, err := New(ctx, mustRelay(t, w), Options{Name: "test", Path: c.dir, Client: "gamma", StateDir: filepath.Join(w.root, "state-gamma"),
		Encrypted: true, Credentials: protocol.Credentials{Identity: idC}, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))}); !errors.Is(err, protocol.ErrKeyRemoved) {
		t.Fatalf("removed client's restart: %v, want ErrKeyRemoved", err)
	}

	// Nothing written after the rotation opens with the removed key.
	old := envelope.NewOpener(oldKeys)
	for name, data := range w.relayFiles() {
		if !strings.HasPrefix(name, "clients/") || bytes.Equal(before[name], data) {
			continue
		}
		if _, err := old.Epoch(bytes.NewReader(data), name); err == nil {
			t.Fatalf("%s, written after the rotation, opens with the removed key", name)
		}
	}

	// Every client ran a round; once the old data is collected, prune
	// retires epoch 1 and the removed key opens nothing on the relay.
	for range 3 {
		a.round()
		b.round()
	}
	if left := w.relayData(); len(left) != 0 {
		t.Fatalf("relay still holds %v", left)
	}
	rep, err := a.e.repo.PruneEpochs(ctx, protocol.RewriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Dropped, []uint32{1}) {
		t.Fatalf("prune: %+v, want epoch 1 dropped", rep)
	}
	fresh, err := protocol.Open(ctx, mustRelay(t, w), true, protocol.Credentials{Passphrase: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fresh.Epochs(), []uint32{2}) {
		t.Fatalf("slots hold epochs %v, want [2]", fresh.Epochs())
	}
	for name, data := range w.relayFiles() {
		if _, err := old.Epoch(bytes.NewReader(data), name); err == nil && !strings.HasSuffix(name, ".json") {
			t.Fatalf("the removed key still opens %s", name)
		}
	}
	// And syncing goes on in epoch 2 alone, including for a client that
	// restarts (its key cache still spares it scrypt and sees the new epoch).
	a.e.Close()
	a2 := w.client("alpha")
	a2.write("later.txt", "after the prune\n", time.Time{})
	a2.round()
	b.round()
	if got, _ := b.read("later.txt"); got != "after the prune\n" {
		t.Fatalf("beta after prune: %q", got)
	}
}

func mustRelay(t *testing.T, w *world) *storage.Relay {
	t.Helper()
	r, err := storage.Open(context.Background(), w.relay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestEncryptionNoneWarnsAtEveryStart: a plain repository is allowed only
// when asked for, and says so each time a client starts.
func TestEncryptionNoneWarnsAtEveryStart(t *testing.T) {
	w := newWorld(t)
	var logs bytes.Buffer
	plain := func(o *Options) {
		o.Encrypted, o.Credentials = false, protocol.Credentials{}
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	a := w.client("alpha", plain)
	a.round()
	a.e.Close()
	w.client("alpha", plain).e.Close()
	if n := strings.Count(logs.String(), "encryption = none"); n != 2 {
		t.Fatalf("%d warnings about encryption = none in two starts:\n%s", n, logs.String())
	}
	// An encrypted client cannot join it silently, nor the reverse.
	logs.Reset()
	if _, err := New(context.Background(), mustRelay(t, w), Options{Name: "test", Path: t.TempDir(), Client: "beta", StateDir: t.TempDir(),
		Encrypted: true, Credentials: protocol.Credentials{Passphrase: "x"}}); err == nil || !strings.Contains(err.Error(), `encryption "none"`) {
		t.Fatalf("encrypted client on a plain relay: %v", err)
	}
	if logs.Len() != 0 {
		t.Fatalf("an encrypted client warned about encryption = none: %s", logs.String())
	}
}
