package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/storage/faulty"
)

// manifests reads every manifest of c still on the relay, by seq.
func (c *client) manifests() map[uint64]*protocol.Manifest {
	c.t.Helper()
	ctx := context.Background()
	entries, err := c.e.relay.List(ctx, protocol.LogDir(c.e.cid))
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[uint64]*protocol.Manifest{}
	for _, en := range entries {
		seq, ok := protocol.ParseSeqName(filepath.Base(en.Name))
		if !ok {
			continue
		}
		m, err := c.e.readManifest(ctx, c.e.cid, seq)
		if err != nil {
			c.t.Fatal(err)
		}
		out[seq] = m
	}
	return out
}

func (c *client) seq() uint64 {
	c.t.Helper()
	seq, err := c.e.metaU64("seq")
	if err != nil {
		c.t.Fatal(err)
	}
	return seq
}

func changeCounts(ms map[uint64]*protocol.Manifest) []int {
	out := make([]int, 0, len(ms))
	for seq := uint64(1); len(out) < len(ms); seq++ {
		if m := ms[seq]; m != nil {
			out = append(out, len(m.Changes))
		}
	}
	return out
}

// A first sync of more changes than a manifest holds publishes several,
// with consecutive seqs; another client pulls them all and the relay
// empties once it has acknowledged.
func TestSplitFirstSyncIntoManifests(t *testing.T) {
	w := newWorld(t)
	a := w.client("alpha", func(o *Options) { o.MaxManifestChanges = 1000 })
	for i := range 2500 {
		a.write(fmt.Sprintf("d%02d/f%04d.txt", i%7, i), fmt.Sprintf("file %d\n", i), time.Time{})
	}
	if r := a.round(); r.Pushed != 2500 {
		t.Fatalf("alpha pushed %d changes, want 2500", r.Pushed)
	}
	if got := a.seq(); got != 3 {
		t.Fatalf("alpha is at seq %d, want 3", got)
	}
	ms := a.manifests()
	if got := fmt.Sprint(changeCounts(ms)); got != "[1000 1000 500]" {
		t.Fatalf("manifests hold %s changes, want [1000 1000 500]", got)
	}
	if data, err := json.Marshal(ms[1]); err == nil {
		t.Logf("manifest 1: %d bytes of JSON, %d a change", len(data), len(data)/len(ms[1].Changes))
	}
	var clock uint64
	for seq := uint64(1); seq <= 3; seq++ {
		if ms[seq].Clock <= clock {
			t.Fatalf("manifest %d has clock %d, not above the previous %d", seq, ms[seq].Clock, clock)
		}
		clock = ms[seq].Clock
	}
	b := w.client("beta")
	if r := b.round(); r.Pulled != 2500 {
		t.Fatalf("beta pulled %d files, want 2500", r.Pulled)
	}
	sameTrees(t, a, b)
	a.round()
	if left := w.relayData(); len(left) != 0 {
		t.Fatalf("relay still holds %d objects after every puller acknowledged, e.g. %s", len(left), left[0])
	}
	if r := b.round(); r.Busy() {
		t.Fatalf("idle round of beta was busy: %+v", r)
	}
}

// A rename whose new path and old path are far apart in path order goes in
// one manifest with the old path's tombstone, past the cap, so the puller
// moves the file instead of fetching it and trashing the old one.
func TestSplitKeepsRenameWithItsSource(t *testing.T) {
	w := newWorld(t)
	a := w.client("alpha", func(o *Options) { o.MaxManifestChanges = 10 })
	b := w.client("beta")
	moved := strings.Repeat("moved, not fetched ", 100)
	a.write("a-old.txt", moved, time.Time{})
	a.round()
	b.round()
	a.round()

	for i := range 15 {
		a.write(fmt.Sprintf("0-pre/%03d", i), fmt.Sprintf("pre %d", i), time.Time{})
		a.write(fmt.Sprintf("zz/%03d", i), fmt.Sprintf("post %d", i), time.Time{})
	}
	for i := range 30 {
		a.write(fmt.Sprintf("m/%03d", i), fmt.Sprintf("middle %d", i), time.Time{})
	}
	if err := os.Rename(filepath.Join(a.dir, "a-old.txt"), filepath.Join(a.dir, "z-new.txt")); err != nil {
		t.Fatal(err)
	}
	// 0-pre/* (15), a-old.txt, m/* (30), z-new.txt, zz/* (15): cut after
	// 10, then not before z-new.txt, then after 10 more.
	if r := a.round(); r.Pushed != 62 {
		t.Fatalf("alpha pushed %d changes, want 62", r.Pushed)
	}
	ms := a.manifests()
	if got := fmt.Sprint(changeCounts(ms)); got != "[10 37 10 5]" {
		t.Fatalf("manifests hold %s changes, want [10 37 10 5]", got)
	}
	for _, m := range ms {
		var from, tomb bool
		for _, c := range m.Changes {
			from = from || c.Path == "z-new.txt" && c.From == "a-old.txt"
			tomb = tomb || c.Path == "a-old.txt" && c.Kind == protocol.KindDelete
		}
		if from != tomb {
			t.Fatalf("manifest %d holds the rename %v but the tombstone %v", m.Seq, from, tomb)
		}
	}
	b.round()
	if got, _ := b.read("z-new.txt"); got != moved {
		t.Fatalf("beta's z-new.txt is %q", got)
	}
	trashed, err := b.e.folder.Trash().List()
	if err != nil {
		t.Fatal(err)
	}
	for _, te := range trashed {
		if te.Name == "a-old.txt" {
			t.Fatal("the old path went to beta's trash: the rename was not applied as a move")
		}
	}
	sameTrees(t, a, b)
	a.round()
	if left := w.relayData(); len(left) != 0 {
		t.Fatalf("relay still holds %v", left)
	}
}

// A folder that becomes a file goes in one manifest with the deletions
// below it: a puller applies deletions first, so the folder is gone when
// the file is written.
func TestSplitKeepsFolderBecomingFile(t *testing.T) {
	w := newWorld(t)
	a := w.client("alpha", func(o *Options) { o.MaxManifestChanges = 10 })
	b := w.client("beta")
	for i := range 5 {
		a.write(fmt.Sprintf("d/%d", i), fmt.Sprintf("in the folder %d", i), time.Time{})
	}
	a.round()
	b.round()
	a.round()

	if err := os.RemoveAll(filepath.Join(a.dir, "d")); err != nil {
		t.Fatal(err)
	}
	a.write("d", "now a file", time.Time{})
	for i := range 15 {
		a.write(fmt.Sprintf("c/%03d", i), fmt.Sprintf("before %d", i), time.Time{})
	}
	// c/* (15), d, d/0..d/4: cut after 10, then not between d and d/4.
	if r := a.round(); r.Pushed != 21 {
		t.Fatalf("alpha pushed %d changes, want 21", r.Pushed)
	}
	if got := fmt.Sprint(changeCounts(a.manifests())); got != "[10 11]" {
		t.Fatalf("manifests hold %s changes, want [10 11]", got)
	}
	if r := b.round(); len(r.Problems) > 0 {
		t.Fatalf("beta's round had problems: %v", r.Problems)
	}
	if got, _ := b.read("d"); got != "now a file" {
		t.Fatalf("beta's d is %q", got)
	}
	sameTrees(t, a, b)
}

// A push that fails between two of its manifests (the second manifest,
// or the data of the second) resumes on the next round and converges.
func TestSplitPushResumesAfterFailure(t *testing.T) {
	for _, tc := range []struct{ what, name string }{
		{"manifest", "clients/*/log/*"},
		{"data", "clients/*/data/*"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			w := newWorld(t)
			inj, onFaulty := w.faultyClients(t)
			a := onFaulty("alpha", func(o *Options) { o.MaxManifestChanges = 100 })
			for i := range 250 {
				a.write(fmt.Sprintf("f%03d", i), fmt.Sprintf("file %d", i), time.Time{})
			}
			// One small pack a manifest: the first pack and manifest go up,
			// the second fails.
			inj.Add(faulty.Rule{Op: faulty.OpPut, Name: tc.name, After: 1, Times: 1, Fault: faulty.Transient})
			if _, err := a.e.Round(context.Background()); err == nil {
				t.Fatal("the round succeeded although its second manifest could not be written")
			}
			if got := fmt.Sprint(changeCounts(a.manifests())); got != "[100]" {
				t.Fatalf("after the failure the relay holds manifests of %s changes, want [100]", got)
			}
			r := a.round()
			if r.Pushed != 150 {
				t.Fatalf("the resumed push published %d changes, want 150", r.Pushed)
			}
			if got := a.seq(); got != 3 {
				t.Fatalf("alpha is at seq %d, want 3", got)
			}
			b := w.client("beta")
			b.round()
			sameTrees(t, a, b)
			a.round()
			if left := w.relayData(); len(left) != 0 {
				t.Fatalf("relay still holds %v", left)
			}
		})
	}
}

// The manifest size estimate is above the real JSON of typical changes,
// and a manifest of DefaultMaxManifestChanges such changes stays far below
// what readers accept.
func TestManifestSizeEstimate(t *testing.T) {
	cid := func(i int) string { return strings.Repeat(string(rune('a'+i)), protocol.CIDLen) }
	hash := strings.Repeat("0123456789abcdef", 4)
	vec := protocol.Vector{cid(0): 1 << 40, cid(1): 123456, cid(2): 7}
	small := protocol.Change{Path: "Documents/Projects/escale/notes/2026-11-25 meeting.txt", Kind: protocol.KindFile,
		Version: vec, By: "laptop-of-someone", Hash: hash, Size: 1 << 19, MTime: time.Now().UnixNano(), Mode: 0o644,
		Data: []protocol.Ref{{Obj: envelope.RandomName(), Off: 15 << 20, Len: 1 << 19, Size: 1 << 19, Z: true}}}
	big := small
	big.Path, big.Size, big.Data = "videos/holiday.mkv", 1<<40, nil
	for i := range 1000 {
		big.Data = append(big.Data, protocol.Ref{Obj: envelope.RandomName(), Off: int64(i) << 24, Len: 1 << 21, Size: 1 << 21, Hash: hash})
	}
	renamed := small
	renamed.From = "Documents/Projects/escale/notes/old name of the meeting.txt"
	link := protocol.Change{Path: "a/link", Kind: protocol.KindSymlink, Version: vec, By: "laptop", Hash: hash, Target: "../../some/target/far/away", MTime: small.MTime}
	del := protocol.Change{Path: small.Path, Kind: protocol.KindDelete, Version: vec, By: "laptop"}
	for _, c := range []protocol.Change{small, big, renamed, link, del} {
		data, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		est := changeJSONSize(&c)
		t.Logf("%-5s %7d bytes, estimated %7d", c.Kind, len(data), est)
		if est < int64(len(data)) {
			t.Errorf("%s: estimated %d bytes, JSON is %d", c.Path, est, len(data))
		}
		if est > 2*int64(len(data))+200 {
			t.Errorf("%s: estimated %d bytes, far above the JSON's %d", c.Path, est, len(data))
		}
	}
	// Far fewer changes than the cap, but one of them a file of 100,000
	// chunks (75 GB): the manifest is full by its size.
	p := &pusher{e: &Engine{opts: Options{MaxManifestChanges: DefaultMaxManifestChanges}}, states: map[string]*fileState{}, pack: newPackBuilder(DefaultMaxPackSize)}
	p.commit(small, nil)
	if p.atCap() {
		t.Fatal("a manifest of one small change is full")
	}
	huge := big
	huge.Data = nil
	for i := range 100000 {
		huge.Data = append(huge.Data, protocol.Ref{Obj: big.Data[i%1000].Obj, Off: int64(i) << 20, Len: 1 << 20, Size: 1 << 20, Hash: hash})
	}
	p.commit(huge, huge.Data)
	if !p.atCap() {
		t.Fatalf("a manifest estimated at %d bytes is not full", p.est)
	}
	m := protocol.Manifest{V: protocol.Version, Client: "laptop", Seq: 1 << 30, Clock: 1 << 40, Need: 3, Pullers: []string{cid(1), cid(2)}}
	for i := range DefaultMaxManifestChanges {
		c := small
		c.Path = fmt.Sprintf("%s-%06d", small.Path, i)
		m.Changes = append(m.Changes, c)
		if i%100 == 0 {
			m.Objects = append(m.Objects, envelope.RandomName())
		}
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a manifest of %d changes: %d bytes, %d a change", DefaultMaxManifestChanges, len(data), len(data)/DefaultMaxManifestChanges)
	if len(data) > protocol.MaxManifest/8 {
		t.Fatalf("a manifest of %d typical changes is %d bytes, not far below the %d readers accept", DefaultMaxManifestChanges, len(data), protocol.MaxManifest)
	}
}
