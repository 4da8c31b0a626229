package engine

import (
	"context"
	"path"
	"reflect"
	"testing"

	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/state"
)

// ownIndex is the client's record of the index it last published.
func ownIndex(t *testing.T, c *modelClient) indexMeta {
	t.Helper()
	var meta indexMeta
	if err := c.e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketMeta)
		if err != nil {
			return err
		}
		_, err = getJSON(b, []byte("index"), &meta)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return meta
}

// TestRelayListingLagHidesOwnHead: a listing that lags (an eventually
// consistent store) hides this client's newest head for a round. Read by
// name the head is there: nothing was lost, so nothing is published again
// and the index is not rebuilt from scratch.
func TestRelayListingLagHidesOwnHead(t *testing.T) {
	w := registered(t, shared("a", "b"))
	a := w.clients[0]
	ctx := context.Background()
	a.write("p", []byte("one"), w.mtime(0))
	a.mustRound()
	a.write("p", []byte("two"), w.mtime(0))
	w.inj.SetListLag(2)
	a.mustRound() // publishes update 2; its head stays out of the next 2 listings
	w.inj.SetListLag(0)
	before := ownIndex(t, a)
	if before.Root == 0 {
		t.Fatal("no index recorded after a publish")
	}

	// The first lagging listing, to check the lag: no head of a's is listed.
	entries, err := a.relay.List(ctx, protocol.HeadsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if h, ok := protocol.ParseHead(path.Base(en.Name)); ok && h.CID == a.e.cid && h.Manifest() {
			t.Fatalf("the listing shows a's head %d: the lag did not hide it", h.Seq)
		}
	}
	res := a.mustRound() // the second lagging listing
	if len(res.Problems) > 0 {
		t.Errorf("the round reported problems: %v", res.Problems)
	}
	if after := ownIndex(t, a); !reflect.DeepEqual(after, before) {
		t.Fatalf("a lagging listing made the client publish its index again: %+v, was %+v", after, before)
	}
	w.settle(10)
	w.checkInvariants()
}

// TestHealedIndexSupersedesTheOldOne: when only this client's head is lost
// (the index stays), the healed index is published above the old
// generation and the old one is deleted, so readers never take the stale
// root (they take the highest).
func TestHealedIndexSupersedesTheOldOne(t *testing.T) {
	w := registered(t, shared("a", "b"))
	a := w.clients[0]
	ctx := context.Background()
	for i, content := range []string{"one", "two", "three"} {
		a.write("p", []byte(content), w.mtime(i))
		a.mustRound()
	}
	before := ownIndex(t, a)
	heads, err := a.relay.List(ctx, protocol.HeadsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range heads {
		if h, ok := protocol.ParseHead(path.Base(en.Name)); ok && h.CID == a.e.cid && h.Manifest() {
			if err := a.relay.Delete(ctx, en.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	a.mustRound() // heals
	after := ownIndex(t, a)
	if after.Root <= before.Root {
		t.Fatalf("healed index at generation %d, the old one was %d: readers would take the stale one", after.Root, before.Root)
	}
	idx, err := a.relay.List(ctx, protocol.IndexDir(a.e.cid))
	if err != nil {
		t.Fatal(err)
	}
	roots := 0
	for _, en := range idx {
		if en.Name == protocol.IndexRootName(a.e.cid, before.Root) {
			t.Errorf("the old index root %s is still on the relay", en.Name)
		}
		if en.Name == protocol.IndexRootName(a.e.cid, after.Root) {
			roots++
		}
	}
	if roots != 1 {
		t.Fatalf("the healed root is not on the relay: %v", idx)
	}
	w.settle(10)
	w.checkInvariants()
}
