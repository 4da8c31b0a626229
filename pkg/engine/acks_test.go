package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/storage/faulty"
)

// An ack write that fails here after the relay stored it (the reply was
// cut) must not have its generation written again with other content: a
// pusher that read the first copy records that generation and reads the
// acks again only under a newer one. Before, the retry reused it, the
// pusher kept the stale acks, and the next update's data stayed on the
// relay (TestNetworkFaults/webdav under load).
func TestAckGenerationNeverReused(t *testing.T) {
	w := newWorld(t)
	inj, mk := w.faultyClients(t)
	a, b := mk("alpha"), mk("beta")
	a.round()
	b.round()
	a.write("one.txt", "one", fixedTime())
	a.round() // update 1, for beta
	// beta pulls it; its ack head lands, but beta hears a reset and the
	// round fails.
	inj.Add(faulty.Rule{Op: faulty.OpPut, Name: "heads/" + b.e.CID() + ".a*", Fault: faulty.PutThenFail})
	if _, err := b.e.Round(context.Background()); err == nil {
		t.Fatal("beta's round succeeded through a failed ack head write")
	}
	if res := a.round(); res.Collected == 0 {
		t.Fatalf("alpha did not collect update 1, which beta's stored acks cover: %+v", res)
	}
	a.write("two.txt", "two", fixedTime())
	a.round() // update 2
	b.round() // pulls it and writes its acks again
	if res := a.round(); res.Collected == 0 {
		t.Fatalf("alpha did not collect update 2 once beta acknowledged it: it kept beta's stale acks (%+v)", res)
	}
	if got, _ := b.read("two.txt"); got != "two" {
		t.Fatalf("beta's two.txt: %q", got)
	}
}

// A puller whose local state was lost starts its ack generations above its
// markers on the relay: from 1 again, a pusher that recorded a later
// generation would ignore its acks, and keep the data.
func TestAckGenerationAfterLostState(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	a.round()
	b.round()
	for i, n := range []string{"one.txt", "two.txt", "three.txt"} {
		a.write(n, n, fixedTime().Add(time.Duration(i)*time.Minute))
		a.round()
		b.round() // acknowledges: a new generation each time
		a.round()
	}
	if err := b.e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(w.root, "state-beta")); err != nil {
		t.Fatal(err)
	}
	b = w.client("beta")
	b.round() // rebuilds its state
	a.write("four.txt", "four", fixedTime().Add(time.Hour))
	a.round()
	b.round()
	if res := a.round(); res.Collected == 0 {
		t.Fatalf("alpha did not collect the update beta acknowledged after losing its state: %+v", res)
	}
	if got, _ := b.read("four.txt"); got != "four" {
		t.Fatalf("beta's four.txt: %q", got)
	}
}
