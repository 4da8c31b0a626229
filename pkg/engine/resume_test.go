package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/escale-sync/escale/pkg/storage/faulty"
)

// An interrupted push resumes chunk by chunk: the chunks already on the
// relay are not sent again, and nothing is left behind.
func TestInterruptedPushResumesPerChunk(t *testing.T) {
	w := newWorld(t)
	inj, onFaulty := w.faultyClients(t)
	a := onFaulty("alpha")
	data := randomBytes(t, 12<<20)
	if err := os.WriteFile(filepath.Join(a.dir, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Every chunk goes up, then the manifest fails: the round fails.
	inj.Add(faulty.Rule{Op: faulty.OpPut, Name: "clients/*/log/*", Times: 1, Fault: faulty.Transient})
	if _, err := a.e.Round(context.Background()); err == nil {
		t.Fatal("the round succeeded although its manifest could not be written")
	}
	r := a.round()
	if r.Pushed != 1 {
		t.Fatalf("pushed %d changes after the interruption, want 1", r.Pushed)
	}
	if r.BytesUp > int64(len(data))/4 {
		t.Fatalf("the resumed push sent %d bytes for a %d-byte file whose chunks were already up", r.BytesUp, len(data))
	}
	b := w.client("beta")
	b.round()
	if got, _ := b.read("big.bin"); got != string(data) {
		t.Fatal("beta's copy differs")
	}
	a.round()
	if left := w.relayData(); len(left) != 0 {
		t.Fatalf("left on the relay: %v", left)
	}
}
