package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/state"
)

// TestWantServedOnceTheHolderGetsTheContent: a client asked for content it
// is itself still waiting for (it lists the path in its index, content
// pending) must serve the request once the content reaches it, without the
// asker having to ask again. Before, the request was marked seen when it
// could not be served, and both clients waited for ever (the divergence of
// the network-fault scenario).
func TestWantServedOnceTheHolderGetsTheContent(t *testing.T) {
	s := newScene(t, false)
	ctx := context.Background()
	tp := s.w.tamper()
	tp.remove(s.packs[0])
	s.b.refused(false, "alpha/one.txt", "sent again") // beta waits for it, asked alpha

	// beta's index lists the path it knows but lacks, marked so.
	_, entries, err := s.b.e.readIndex(ctx, s.b.e.CID())
	if err != nil {
		t.Fatal(err)
	}
	var lacks, listed bool
	for _, c := range entries {
		if c.Path == "alpha/one.txt" {
			listed, lacks = true, c.Lacks
		}
	}
	if !listed || !lacks {
		t.Fatalf("beta's index: alpha/one.txt listed %v, marked as lacking its content %v; want both (a client catching up from it must ask alpha)", listed, lacks)
	}

	// gamma asks beta for it (as a client catching up from beta's index
	// did before the entries carried `lacks`).
	st, err := s.b.e.loadState("alpha/one.txt")
	if err != nil || st == nil {
		t.Fatalf("beta's state of alpha/one.txt: %v %v", st, err)
	}
	if err := s.c.e.want("alpha/one.txt", &protocol.Change{Hash: st.Hash}, s.b.e.CID()); err != nil {
		t.Fatal(err)
	}
	if err := s.c.e.flushState(); err != nil {
		t.Fatal(err)
	}
	if err := s.c.e.publishWants(ctx); err != nil {
		t.Fatal(err)
	}
	s.b.refused(false, "content again") // cannot serve gamma yet: still waiting itself

	tp.repair()
	s.a.ok() // serves beta's request
	s.b.ok() // gets the content, and serves gamma's pending request
	if got, ok := s.b.read("alpha/one.txt"); !ok || !strings.Contains(got, "alpha's first file") {
		t.Fatalf("beta did not get alpha/one.txt: %q %v", got, ok)
	}
	found := false
	for seq := uint64(1); seq <= 3 && !found; seq++ {
		m, err := s.b.e.readManifest(ctx, s.b.e.CID(), seq)
		if err != nil {
			continue
		}
		for _, c := range m.Changes {
			if c.Path == "alpha/one.txt" && len(c.Data) > 0 {
				found = true
			}
		}
	}
	if !found {
		t.Fatal("bug (regression): beta got the content gamma asked it for, but never sent it: the request was marked served while beta could not serve it, and gamma waits for ever")
	}
	converge(t, s.a, s.b, s.c)
}

// TestCatchUpAsksTheAuthorWhenTheIndexLacksIt: a client catching up from
// the index of a client that waits for a file's content itself asks the
// file's author, not that client (which cannot send it).
func TestCatchUpAsksTheAuthorWhenTheIndexLacksIt(t *testing.T) {
	s := newScene(t, false)
	tp := s.w.tamper()
	tp.remove(s.packs[0])
	s.b.refused(false, "alpha/one.txt", "sent again") // beta waits for it
	s.b.write("beta/x.txt", "beta's file\n", fixedTime())
	s.b.refused(false, "content again") // pushes beta.1 and its index
	// gamma misses alpha.1 and beta.1 and cannot read alpha's index: it
	// catches up from beta's index alone.
	for name := range s.w.relayFiles() {
		if name == protocol.ManifestName(s.a.e.CID(), 1) || name == protocol.ManifestName(s.b.e.CID(), 1) ||
			strings.HasPrefix(name, protocol.IndexDir(s.a.e.CID())+"/") {
			tp.remove(name)
		}
	}
	s.c.try()
	var holder string
	if err := s.c.e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketWants)
		if err != nil {
			return err
		}
		var it wantItem
		ok, err := getJSON(b, []byte("alpha/one.txt"), &it)
		if ok {
			holder = it.Holder
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if holder != s.a.e.CID() {
		t.Fatalf("gamma asked %q for alpha/one.txt (alpha is %s, beta %s): it must ask the author, as beta's index says beta lacks it", holder, s.a.e.CID(), s.b.e.CID())
	}
	tp.repair()
	converge(t, s.a, s.b, s.c)
}

// TestWantTurnsToAnotherHolder: a want whose holder never serves it (that
// client stopped running for good) is addressed to the other clients in
// turn, and one that holds the content sends it.
func TestWantTurnsToAnotherHolder(t *testing.T) {
	s := newScene(t, false)
	d := s.w.client("delta")
	d.ok() // delta gets alpha's files, then never runs again
	s.b.ok()
	tp := s.w.tamper()
	tp.remove(s.packs[0])
	s.c.refused(false, "alpha/one.txt", "sent again")
	// Address gamma's request to delta, as if delta had been the only
	// index gamma could catch up from.
	if err := s.c.e.db.Update(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketWants)
		if err != nil {
			return err
		}
		return b.ForEach(nil, func(k, v []byte) error {
			var it wantItem
			if err := json.Unmarshal(v, &it); err != nil {
				return err
			}
			it.Holder = d.e.CID()
			return putJSON(b, k, &it)
		})
	}); err != nil {
		t.Fatal(err)
	}
	// gamma's clock: the request must also wait WantPatience, so that an
	// idle holder (polling every max_poll) sees it before it moves on.
	now := time.Now()
	s.c.e.opts.Now = func() time.Time { return now }
	s.c.refused(false, "content again") // publishes the request naming delta
	rounds := func() {
		for i := 0; i < 4*wantPatience; i++ {
			s.a.try()
			s.b.try()
			s.c.try()
			if _, ok := s.c.read("alpha/one.txt"); ok {
				break
			}
		}
	}
	rounds()
	if _, ok := s.c.read("alpha/one.txt"); ok {
		t.Fatalf("gamma's request moved on from delta within %d rounds but no time: an idle holder would never see it", 4*wantPatience)
	}
	now = now.Add(DefaultWantPatience + time.Minute)
	rounds()
	if _, ok := s.c.read("alpha/one.txt"); !ok {
		t.Fatalf("bug (regression): gamma's request named a client that never serves it, and after %d rounds nobody else was asked: gamma waits for ever although alpha and beta hold the file", 4*wantPatience)
	}
	if got, _ := s.c.read("alpha/two.txt"); !strings.Contains(got, "alpha's second file") {
		t.Fatalf("gamma's alpha/two.txt: %q", got)
	}
}

// TestWantServedOnceTheQuotaAllows: a request for content that does not
// fit the relay's quota when its holder reads it waits for space, as a push
// does. The scene of the TestRelayQuota flake: alpha pushes before anyone
// else registered (Need 1), beta pulls and acknowledges, alpha collects,
// and gamma, joining later, catches up from alpha's index and asks for the
// collected files while alpha's next push fills the relay. Before, the
// pusher dropped the pack that did not fit without an error, the request
// was marked served, and gamma waited for ever.
func TestWantServedOnceTheQuotaAllows(t *testing.T) {
	const quota, size = 1_000_000, 350_000 // one file a pack; two fit the quota, three do not
	w := newWorld(t)
	withQuota := func(o *Options) { o.Quota = quota }
	a := w.client("alpha", withQuota)
	want := map[string]string{}
	for i := range 6 {
		p := fmt.Sprintf("bulk/%d.bin", i)
		want[p] = string(randomBytes(t, size))
		a.write(p, want[p], fixedTime())
	}
	a.round() // bulk/0 and bulk/1 fit; nobody else registered: Need 1
	if m := a.manifest(1); m.Need != 1 || len(m.Changes) != 2 || m.Changes[0].Path != "bulk/0.bin" || m.Changes[1].Path != "bulk/1.bin" {
		t.Fatalf("alpha's first update: need %d, changes %v; want need 1, bulk/0.bin and bulk/1.bin", m.Need, m.Changes)
	}
	b := w.client("beta", withQuota)
	b.round() // pulls and acknowledges them
	if res := a.round(); res.Collected == 0 {
		t.Fatalf("alpha collected nothing once beta acknowledged its first update: %+v", res)
	}
	g := w.client("gamma", withQuota)
	g.round() // catches up from alpha's index, finds no content, asks alpha
	if n, err := g.e.wantCount(); err != nil || n != 2 {
		t.Fatalf("gamma asks for %d files (%v); want bulk/0.bin and bulk/1.bin", n, err)
	}
	// alpha's push fills the relay first; the request must wait, not vanish.
	a.round()
	for sweep := 0; sweep < 20; sweep++ {
		a.round()
		b.round()
		g.round()
	}
	for p, body := range want {
		if got, ok := g.read(p); !ok || got != body {
			t.Errorf("gamma's %s: present %v, right content %v", p, ok, got == body)
		}
	}
	if t.Failed() {
		n, _ := g.e.wantCount()
		t.Fatalf("alpha never sent what gamma asked for (gamma still asks for %d files): a request read while the relay was full must stay pending", n)
	}
}

// TestWantServedInAnUpdateTheCatchUpSkips: a holder answers two askers'
// requests with two republishes in turn; the first asker acknowledges its
// own, the holder collects it, and the second asker finds that update
// missing and catches up from the holder's index, whose root covers its own
// republish too. The catch-up skips that update (and acknowledges it), so
// its content must be asked for again: the holder reads a request once,
// and before an unchanged request was never read again, so the second
// asker waited for the want's hand-off to another client (10 minutes; the
// model test's clients never settled, TestModelRandomEdits).
func TestWantServedInAnUpdateTheCatchUpSkips(t *testing.T) {
	s := newScene(t, false)
	tp := s.w.tamper()
	for _, name := range s.packs {
		tp.remove(name) // collected, as far as beta and gamma can tell
	}
	s.b.refused(false, "alpha/one.txt", "sent again")
	s.c.refused(false, "alpha/one.txt", "sent again")
	s.a.ok() // reads both requests: one republish for each asker
	askers := map[string]*client{s.b.e.CID(): s.b, s.c.e.CID(): s.c}
	var order []*client
	for seq := uint64(2); seq <= 3; seq++ {
		m := s.a.manifest(seq)
		if len(m.Pullers) != 1 || askers[m.Pullers[0]] == nil {
			t.Fatalf("alpha's update %d is for %v; want a republish for beta or gamma", seq, m.Pullers)
		}
		order = append(order, askers[m.Pullers[0]])
	}
	first, second := order[0], order[1]
	first.ok() // gets its republish, acknowledges it (and the next one)
	if res := s.a.ok(); res.Collected == 0 {
		t.Fatalf("alpha collected nothing once %s acknowledged its republish: %+v", first.name, res)
	}
	second.ok() // update 2 is gone: catches up from alpha's index, which covers update 3
	if got := second.acked(s.a); got != 3 {
		t.Fatalf("scene: %s acknowledged alpha's update %d after catching up; want 3 (its own republish skipped)", second.name, got)
	}
	for range 4 {
		s.a.ok()
		s.b.ok()
		s.c.ok()
	}
	for _, c := range []*client{s.b, s.c} {
		if got, ok := c.read("alpha/one.txt"); !ok || got != "alpha's first file\n" {
			n, _ := c.e.wantCount()
			t.Fatalf("%s never got alpha/one.txt (%q, %v; it still asks for %d files): its republish was in an update its catch-up skipped, and its request must be read again", c.name, got, ok, n)
		}
	}
	converge(t, s.a, s.b, s.c)
}
