package engine

import (
	"context"
	"fmt"
	"testing"

	"github.com/escale-sync/escale/pkg/storage"
	"github.com/escale-sync/escale/pkg/storage/faulty"
)

// TestIdleRoundCostsOneList: once everything is synced, a round of a
// running client (the daemon's poll) makes at most two relay requests,
// whatever the number of files: it lists heads/ and finds nothing new.
func TestIdleRoundCostsOneList(t *testing.T) {
	w := newWorld(t)
	inj := faulty.New()
	spec, unregister := faulty.Register(fmt.Sprintf("idle-%p", t), inj, w.relay)
	t.Cleanup(unregister)
	open := func() *storage.Relay {
		r, err := storage.Open(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	a, b := w.clientWithRelay("alpha", open()), w.clientWithRelay("beta", open())
	for i := range 300 {
		a.write(fmt.Sprintf("d%d/f%03d.txt", i%7, i), fmt.Sprintf("file %d", i), fixedTime())
	}
	for range 3 {
		a.round()
		b.round()
	}
	calls := func() int {
		n := 0
		for _, op := range []faulty.Op{faulty.OpList, faulty.OpNewObject, faulty.OpPut, faulty.OpOpen, faulty.OpRemove, faulty.OpMkdir, faulty.OpRmdir} {
			n += inj.Count(op)
		}
		return n
	}
	const rounds = 5
	before := calls()
	for range rounds {
		for _, c := range []*client{a, b} {
			if r := c.round(); r.Busy() {
				t.Fatalf("an idle round of %s was busy: %+v", c.name, r)
			}
		}
	}
	per := float64(calls()-before) / (2 * rounds)
	t.Logf("%.1f relay requests per idle round (%d files)", per, 300)
	if per > 2 {
		t.Fatalf("an idle round made %.1f relay requests, want at most 2", per)
	}
}
