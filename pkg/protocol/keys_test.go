package protocol

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/storage"
)

var fastScrypt = envelope.WithScryptWorkFactor(10)

func testRelay(t *testing.T) *storage.Relay {
	t.Helper()
	r, err := storage.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func mustOpen(t *testing.T, relay *storage.Relay, creds Credentials) *Repo {
	t.Helper()
	r, err := Open(context.Background(), relay, true, creds)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return r
}

func TestKeyCacheSparesScryptAndIsPrivate(t *testing.T) {
	ctx := context.Background()
	relay := testRelay(t)
	cache := filepath.Join(t.TempDir(), "state", "keys.cache")
	if _, err := Create(ctx, relay, true, Credentials{Passphrase: "first", CacheFile: cache}, fastScrypt); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(cache)
	if err != nil {
		t.Fatalf("no key cache after create: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key cache mode %v, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(cache)
	if strings.Contains(string(data), "first") {
		t.Fatal("the key cache holds the passphrase")
	}
	// With the cache, no passphrase is needed at all: nothing ran scrypt.
	r := mustOpen(t, relay, Credentials{CacheFile: cache})
	if !slices.Equal(r.Epochs(), []uint32{1}) {
		t.Fatalf("epochs %v", r.Epochs())
	}
	// Without it, the passphrase is needed again.
	if _, err := Open(ctx, relay, true, Credentials{}); err == nil {
		t.Fatal("opened without passphrase nor cache")
	}
	// A cache of another repository is ignored.
	other := testRelay(t)
	if _, err := Create(ctx, other, true, Credentials{Passphrase: "x"}, fastScrypt); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, other, true, Credentials{CacheFile: cache}); err == nil {
		t.Fatal("the cache of one repository opened another")
	}
}

func TestKeySlotsAddListRemove(t *testing.T) {
	ctx := context.Background()
	relay := testRelay(t)
	admin, err := Create(ctx, relay, true, Credentials{Passphrase: "admin pass"}, fastScrypt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddPassphrase(ctx, "second pass", "phone", fastScrypt); err != nil {
		t.Fatal(err)
	}
	id, _ := age.GenerateX25519Identity()
	if _, err := admin.AddIdentity(ctx, id.Recipient(), "server"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AddIdentity(ctx, id.Recipient(), "again"); err == nil {
		t.Fatal("added the same identity twice")
	}
	slots, err := admin.KeySlots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, s := range slots {
		labels = append(labels, s.Label+"/"+s.Kind)
		if s.Created.IsZero() || s.Legacy {
			t.Fatalf("slot %+v lacks its creation time", s)
		}
	}
	slices.Sort(labels)
	if want := []string{"initial passphrase/passphrase", "phone/passphrase", "server/identity"}; !slices.Equal(labels, want) {
		t.Fatalf("slots %v, want %v", labels, want)
	}
	// The relay sees no label: slot infos are sealed.
	for name, data := range relayFiles(t, relay, KeysDir) {
		for _, secret := range []string{"phone", "server", "admin pass", "second pass"} {
			if strings.Contains(string(data), secret) {
				t.Fatalf("%s holds %q in clear", name, secret)
			}
		}
	}
	for _, c := range []Credentials{{Passphrase: "second pass"}, {Identity: id}} {
		mustOpen(t, relay, c)
	}

	if _, err := admin.RemoveSlot(ctx, "initial passphrase"); err == nil || !strings.Contains(err.Error(), "opened the repository with") {
		t.Fatalf("removing its own slot: %v", err)
	}
	if _, err := admin.RemoveSlot(ctx, "nobody"); err == nil {
		t.Fatal("removed a slot that does not exist")
	}
	if _, err := admin.RemoveSlot(ctx, "phone"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, relay, true, Credentials{Passphrase: "second pass"}); !errors.Is(err, envelope.ErrWrongKey) {
		t.Fatalf("removed passphrase: %v, want ErrWrongKey", err)
	}
	phone := mustOpen(t, relay, Credentials{Identity: id})
	if _, err := phone.RemoveSlot(ctx, "initial passphrase"); err != nil {
		t.Fatal(err)
	}
	if _, err := phone.RemoveSlot(ctx, "server"); err == nil {
		t.Fatal("removed the last slot")
	}
}

// relayFiles reads every object under dir.
func relayFiles(t *testing.T, relay *storage.Relay, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if err := relay.Walk(context.Background(), dir, func(e storage.Entry) error {
		data, err := getAll(context.Background(), relay, e.Name, 64<<20)
		out[e.Name] = data
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRotateRemovedKeyReadsNothingNew(t *testing.T) {
	ctx := context.Background()
	relay := testRelay(t)
	state := t.TempDir()
	admin, err := Create(ctx, relay, true, Credentials{Passphrase: "admin"}, fastScrypt)
	if err != nil {
		t.Fatal(err)
	}
	keep, _ := age.GenerateX25519Identity()
	gone, _ := age.GenerateX25519Identity()
	for _, x := range []*age.X25519Identity{keep, gone} {
		if _, err := admin.AddIdentity(ctx, x.Recipient(), x.Recipient().String()[:12]); err != nil {
			t.Fatal(err)
		}
	}
	// Two running clients, each owning a record sealed in epoch 1.
	cacheKeep := filepath.Join(state, "keep.cache")
	cacheGone := filepath.Join(state, "gone.cache")
	kept := mustOpen(t, relay, Credentials{Identity: keep, CacheFile: cacheKeep})
	removed := mustOpen(t, relay, Credentials{Identity: gone, CacheFile: cacheGone})
	kept.SetOwner(kept.CID("kept"))
	removed.SetOwner(removed.CID("removed"))
	for _, r := range []*Repo{kept, removed} {
		if _, err := r.PutJSON(ctx, envelope.KindAcks, InfoName(r.owner), map[string]string{"who": r.owner}); err != nil {
			t.Fatal(err)
		}
	}
	oldKeys := removed.Keyrings()
	cidBefore := kept.CID("kept")

	if _, err := admin.RemoveSlot(ctx, gone.Recipient().String()[:12]); err != nil {
		t.Fatal(err)
	}
	next, err := admin.Rotate(ctx, RewriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if next.Epoch != 2 || !slices.Equal(admin.Epochs(), []uint32{1, 2}) {
		t.Fatalf("after rotate: epoch %d, live %v", next.Epoch, admin.Epochs())
	}

	// The running kept client notices the rotation in its idle poll, keeps
	// its client id, and reseals its record in epoch 2.
	if _, err := kept.ListHeads(ctx); err != nil {
		t.Fatalf("kept client after rotation: %v", err)
	}
	if got := kept.current().Epoch; got != 2 {
		t.Fatalf("kept client writes with epoch %d, want 2", got)
	}
	if kept.CID("kept") != cidBefore {
		t.Fatal("the client id changed with the rotation: everything would be re-sent")
	}
	if ep, err := kept.ObjectEpoch(ctx, InfoName(kept.owner)); err != nil || ep != 2 {
		t.Fatalf("kept client's record: epoch %d, %v; want resealed in 2", ep, err)
	}
	// The removed client, running, is told so.
	for range 2 { // and keeps being told: it never goes on with its old keys
		if _, err := removed.ListHeads(ctx); !errors.Is(err, ErrKeyRemoved) {
			t.Fatalf("removed client's poll: %v, want ErrKeyRemoved", err)
		}
	}
	if _, err := Open(ctx, relay, true, Credentials{Identity: gone, CacheFile: cacheGone}); !errors.Is(err, ErrKeyRemoved) {
		t.Fatalf("removed client's restart: %v, want ErrKeyRemoved", err)
	}
	if data, err := os.ReadFile(cacheGone); err != nil || strings.Contains(string(data), "AGE-SECRET-KEY") || !strings.Contains(string(data), `"removed":true`) {
		t.Fatalf("the removed client's cache: %s, %v; want only a removal record", data, err)
	}

	// What is written after the rotation is closed to the removed key.
	name := ManifestName(kept.owner, 1)
	if _, err := kept.PutJSON(ctx, envelope.KindManifest, name, map[string]int{"seq": 1}); err != nil {
		t.Fatal(err)
	}
	data, _ := getAll(ctx, relay, name, MaxManifest)
	var ve *envelope.VerifyError
	if _, err := envelope.NewOpener(oldKeys).OpenBytes(data, envelope.KindManifest, name, MaxManifest); !errors.As(err, &ve) || ve.Reason != envelope.ReasonWrongKey {
		t.Fatalf("removed key opening a post-rotation object: %v", err)
	}

	// Epoch 1 still seals the removed client's record: prune keeps it.
	rep, err := admin.PruneEpochs(ctx, RewriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Dropped) != 0 || rep.Use[0].Epoch != 1 || rep.Use[0].Objects != 1 || rep.Use[0].Clients[0] != removed.owner {
		t.Fatalf("prune with an epoch-1 object left: %+v", rep)
	}
	// Once it is gone (its client dropped, or it resealed), epoch 1 retires.
	if err := relay.Delete(ctx, InfoName(removed.owner)); err != nil {
		t.Fatal(err)
	}
	if rep, err = admin.PruneEpochs(ctx, RewriteOptions{}); err != nil || !slices.Equal(rep.Dropped, []uint32{1}) {
		t.Fatalf("prune: %+v, %v; want epoch 1 dropped", rep, err)
	}
	fresh := mustOpen(t, relay, Credentials{Identity: keep})
	if !slices.Equal(fresh.Epochs(), []uint32{2}) {
		t.Fatalf("slots hold epochs %v after prune, want [2]", fresh.Epochs())
	}
	// The removed key opens nothing left on the relay.
	old := envelope.NewOpener(oldKeys)
	for name, data := range relayFiles(t, relay, ClientsDir) {
		if _, err := old.Epoch(strings.NewReader(string(data)), name); err == nil {
			t.Fatalf("the removed key still opens %s", name)
		}
	}
}

func TestPlainRepositoryHasNoKeys(t *testing.T) {
	ctx := context.Background()
	relay := testRelay(t)
	r, err := Create(ctx, relay, false, Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.KeySlots(ctx); err == nil {
		t.Fatal("a plain repository listed key slots")
	}
	if _, err := r.Rotate(ctx, RewriteOptions{}); err == nil {
		t.Fatal("a plain repository rotated keys")
	}
	if _, err := Open(ctx, relay, true, Credentials{Passphrase: "x"}); err == nil || !strings.Contains(err.Error(), `encryption "none"`) {
		t.Fatalf("opening a plain repository as encrypted: %v", err)
	}
}

func TestEpochMarkerNames(t *testing.T) {
	for _, n := range []uint32{1, 2, 1<<32 - 1} {
		name := EpochMarkerName(n)
		got, ok := parseEpochMarker(name[len(HeadsDir)+1:])
		if !ok || got != n {
			t.Fatalf("%s parsed as %d, %v", name, got, ok)
		}
		if _, isHead := ParseHead(name[len(HeadsDir)+1:]); isHead {
			t.Fatalf("%s parses as a client head", name)
		}
	}
	for _, bad := range []string{"epoch.0000000000000000", "epoch.0000000100000000", "epoch.1", "epoch.000000000000000A", "epoch", "x.0000000000000001"} {
		if n, ok := parseEpochMarker(bad); ok {
			t.Fatalf("%q accepted as epoch %d", bad, n)
		}
	}
}

// FuzzEpochMarker: a hostile heads/ listing never yields epoch 0 or a
// number that does not round-trip to the same name.
func FuzzEpochMarker(f *testing.F) {
	f.Add("epoch.0000000000000002")
	f.Add("epoch.ffffffffffffffff")
	f.Fuzz(func(t *testing.T, base string) {
		n, ok := parseEpochMarker(base)
		if ok && (n == 0 || HeadsDir+"/"+base != EpochMarkerName(n)) {
			t.Fatalf("%q gave epoch %d", base, n)
		}
	})
}

// TestPlantedSlotIsFlagged: a former member with an old epoch's keys and
// write access to the storage forges a slot for itself. Listing shows it
// sealed with an old epoch; once that epoch is retired it is damaged, and no
// slot rewrite ever re-encrypts the keys to it.
func TestPlantedSlotIsFlagged(t *testing.T) {
	ctx := context.Background()
	relay := testRelay(t)
	admin, err := Create(ctx, relay, true, Credentials{Passphrase: "admin"}, fastScrypt)
	if err != nil {
		t.Fatal(err)
	}
	formerKeys := admin.Keyrings()
	if _, err := admin.Rotate(ctx, RewriteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The forgery, with epoch 1 only.
	mallory, _ := age.GenerateX25519Identity()
	forger := &Repo{Relay: relay, Marker: admin.Marker, repoID: admin.repoID, keys: formerKeys}
	forger.setup()
	if _, err := forger.addIdentitySlot(ctx, "mallorymallorymallorymallo", mallory.Recipient(), "backup"); err != nil {
		t.Fatal(err)
	}
	slots, err := admin.KeySlots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	epochs := map[string]uint32{}
	for _, s := range slots {
		epochs[s.Label] = s.Epoch
	}
	if epochs["backup"] != 1 || epochs["initial passphrase"] != 2 {
		t.Fatalf("slot epochs %v: the planted slot should stand out with epoch 1", epochs)
	}
	// No slot rewrite re-encrypts the keys to it unless told to.
	if _, err := admin.PruneEpochs(ctx, RewriteOptions{}); err == nil || !strings.Contains(err.Error(), "backup") {
		t.Fatalf("prune with a planted slot: %v", err)
	}
	if _, err := admin.Rotate(ctx, RewriteOptions{}); err == nil {
		t.Fatal("rotate re-encrypted the keys to a slot planted with an old epoch")
	}
	if _, err := admin.RemoveSlot(ctx, "backup"); err != nil {
		t.Fatal(err)
	}
	if rep, err := admin.PruneEpochs(ctx, RewriteOptions{}); err != nil || !slices.Equal(rep.Dropped, []uint32{1}) {
		t.Fatalf("prune after removing the planted slot: %+v, %v", rep, err)
	}
}
