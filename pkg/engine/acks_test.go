package engine

import (
	"context"
	"testing"

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
