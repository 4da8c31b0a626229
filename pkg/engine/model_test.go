package engine

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/cryptotest"

	"pgregory.net/rapid"

	"github.com/escale-sync/escale/pkg/storage/faulty"
)

// modelPaths are few, so that clients collide on them.
var modelPaths = []string{"a.txt", "b.txt", "d/c.txt", "d/e/f.md", "g"}

// modelConfig says what a random history may contain.
type modelConfig struct {
	maxSteps int
	faults   []faulty.Fault
	ops      []faulty.Op // "" is any operation
	names    []string    // patterns of the faulted names; "" is any name
	lag      bool
	big      bool
	// deltas: an edit of a big file keeps most of its chunks, so only the
	// changed ones travel (TestModelDeltaToAPullerWithoutTheBase).
	deltas bool
	// deletes: deletions and renames (a tombstone each); past: mtimes older
	// than the logical clock. They reach the engine bugs of
	// TestModelDeleteVersusOlderConcurrentEdit and
	// TestModelConflictWithSkewedLocalEdit.
	deletes, past bool
	// lagAtRestart: a client restarted after a crash may still find its
	// last uploads missing from listings (the engine bug of
	// TestModelOrphanHiddenByListingLag); otherwise the listing has caught
	// up by the time it restarts.
	lagAtRestart bool
	// conservativeKeeps: check that the conservative client keeps its own
	// files (TestModelConservativeKeepsItsOwnFile).
	conservativeKeeps bool
	// nudge: after settling, two clients publish one more file each and the
	// clients settle again, so every puller rewrites its acknowledgements
	// (lost ones are never rewritten otherwise: TestModelCrashAtEveryPullCall).
	nudge bool
}

// everything the injector can do.
var fullModel = modelConfig{
	maxSteps: 40,
	faults:   []faulty.Fault{faulty.Transient, faulty.NotFound, faulty.Reset, faulty.PartialPut, faulty.PutThenFail},
	ops:      []faulty.Op{"", faulty.OpPut, faulty.OpList, faulty.OpNewObject, faulty.OpOpen, faulty.OpRemove},
	names: []string{"", "heads", "heads/*", "clients", "clients/*/info", "clients/*/log/*", "clients/*/data",
		"clients/*/data/*", "clients/*/acks", "clients/*/index/*", "clients/*/wants"},
	lag:     true,
	big:     true,
	deltas:  true,
	deletes: true,
	past:    true,

	lagAtRestart:      true,
	conservativeKeeps: true,
}

// modelRapidDefaults sets how many histories rapid tries, unless the user
// chose (-rapid.checks, RAPID_CHECKS), and keeps rapid's fail files out of
// the source tree: the failure message prints the seed to rerun it with.
func modelRapidDefaults(t *testing.T, checks int) {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, v := range map[string]string{"rapid.checks": strconv.Itoa(checks), "rapid.nofailfile": "true"} {
		f := flag.Lookup(name)
		env := "RAPID_" + strings.ToUpper(strings.TrimPrefix(name, "rapid."))
		if _, inEnv := os.LookupEnv(env); f == nil || set[name] || inEnv {
			continue
		}
		old := f.Value.String()
		flag.Set(name, v)
		t.Cleanup(func() { flag.Set(name, old) })
	}
}

// TestModelRandomHistories runs random histories of edits, deletions,
// renames, rounds, faults, crashes and listing lag on five clients, lets
// them settle, and checks convergence, that nothing is lost, that the relay
// empties and that no temp file shows. Rerun a failure with the -rapid.seed
// it prints.
func TestModelRandomHistories(t *testing.T) {
	modelRapidDefaults(t, 20)
	base := t.TempDir()
	rapid.Check(t, func(rt *rapid.T) { runModel(t, rt, base, fullModel) })
}

// TestModelRandomEdits is TestModelRandomHistories without what reaches
// the known engine bugs: deletions, renames and mtimes in the past
// (TestModelDeleteVersusOlderConcurrentEdit,
// TestModelConflictWithSkewedLocalEdit), big files edited in place
// (TestModelDeltaToAPullerWithoutTheBase), a listing still lagging when a
// crashed client restarts (TestModelOrphanHiddenByListingLag), uploads cut
// in the middle (TestModelTruncatedAcksBlockOthers,
// TestModelResumeReusesACutChunk); the conservative
// client's promise is not checked (TestModelConservativeKeepsItsOwnFile),
// and a last change from two clients makes lost acknowledgements be sent
// again (TestModelCrashAtEveryPullCall).
func TestModelRandomEdits(t *testing.T) {
	modelRapidDefaults(t, 30)
	base := t.TempDir()
	cfg := fullModel
	cfg.deletes, cfg.past, cfg.deltas, cfg.lagAtRestart, cfg.conservativeKeeps = false, false, false, false, false
	cfg.nudge = true
	cfg.faults = []faulty.Fault{faulty.Transient, faulty.NotFound, faulty.Reset, faulty.PutThenFail}
	rapid.Check(t, func(rt *rapid.T) { runModel(t, rt, base, cfg) })
}

// runModel plays one random history. crypto/rand is seeded from the
// history (repository keys, client ids, pack names), so a failure replays
// with its seed, and rapid can shrink it.
func runModel(t *testing.T, rt *rapid.T, base string, cfg modelConfig) {
	cryptotest.SetGlobalRandom(t, rapid.Uint64().Draw(rt, "crypto seed"))
	root, err := os.MkdirTemp(base, "case-")
	if err != nil {
		rt.Fatalf("%v", err)
	}
	rt.Cleanup(func() { os.RemoveAll(root) })

	specs := []modelSpec{{name: "c0"}, {name: "c1"}, {name: "c2"}, {name: "c3"}, {name: "c4"}}
	for i := range specs {
		specs[i].mode = Shared
	}
	specs[4].mode = rapid.SampledFrom([]Mode{Shared, Shared, Upload, Download, Conservative}).Draw(rt, "mode of c4")
	w := newModelWorld(rt, root, specs)
	w.lenientConservative = !cfg.conservativeKeeps
	// Everyone registers first, so each is an expected puller of every
	// update (late joiners are TestModelPullerCounts' and TestModelPullerTimeout's).
	for _, c := range w.clients {
		c.mustRound()
	}

	steps := rapid.IntRange(1, cfg.maxSteps).Draw(rt, "steps")
	for i := range steps {
		modelStep(rt, w, cfg, i)
	}
	rt.Logf("settling")
	w.settle(20)
	if cfg.nudge {
		for _, c := range w.clients[:2] {
			p := "nudge-" + c.name
			c.write(p, w.content(p, false, nil, 0), w.mtime(0))
		}
		rt.Logf("nudged; settling again")
		w.settle(20)
	}
	w.checkInvariants()
}

// modelStep draws and plays one step of a history.
func modelStep(rt *rapid.T, w *modelWorld, cfg modelConfig, i int) {
	c := w.clients[rapid.IntRange(0, len(w.clients)-1).Draw(rt, "client")]
	path := rapid.SampledFrom(modelPaths).Draw(rt, "path")
	op := rapid.IntRange(0, 99).Draw(rt, "op")
	switch {
	case op < 30: // a round
		res, err := c.round()
		if err != nil {
			rt.Fatalf("step %d: round of %s failed with no fault armed: %v", i, c.name, err)
		}
		rt.Logf("step %d: %s round: %s", i, c.name, modelResult(res))
	case op < 55: // create or edit
		big := cfg.big && rapid.IntRange(0, 9).Draw(rt, "big") == 0
		back := 0
		if cfg.past && rapid.IntRange(0, 4).Draw(rt, "mtime in the past") == 0 {
			back = rapid.IntRange(1, 100).Draw(rt, "seconds back")
		}
		var old []byte
		if big && cfg.deltas {
			old, _ = os.ReadFile(c.abs(path))
		}
		data := w.content(path, big, old, rapid.IntRange(0, 1000).Draw(rt, "region"))
		mtime := w.mtime(back)
		c.write(path, data, mtime)
		rt.Logf("step %d: %s writes %s: version %d, %d bytes, mtime %s", i, c.name, path, w.versions, len(data), mtime.Format("15:04:05"))
	case op < 63: // delete
		if cfg.deletes && c.exists(path) {
			c.remove(path)
			rt.Logf("step %d: %s deletes %s", i, c.name, path)
		}
	case op < 71: // rename, over an existing file or not
		to := rapid.SampledFrom(modelPaths).Draw(rt, "rename to")
		if cfg.deletes && c.exists(path) && to != path {
			c.rename(path, to)
			rt.Logf("step %d: %s renames %s to %s", i, c.name, path, to)
		}
	case op < 75: // executable bit
		if c.exists(path) {
			c.toggleExec(path)
			rt.Logf("step %d: %s toggles the exec bit of %s", i, c.name, path)
		}
	case op < 93: // a round under a fault, then a crash if it failed
		if len(cfg.faults) == 0 {
			return
		}
		r := faulty.Rule{
			Op:    rapid.SampledFrom(cfg.ops).Draw(rt, "fault op"),
			Name:  rapid.SampledFrom(cfg.names).Draw(rt, "fault name"),
			After: rapid.IntRange(0, 15).Draw(rt, "fault after"),
			Times: rapid.IntRange(1, 4).Draw(rt, "fault times"),
			Fault: rapid.SampledFrom(cfg.faults).Draw(rt, "fault"),
		}
		before := len(w.inj.Injected())
		w.inj.Add(r)
		res, err := c.round()
		w.inj.Disarm()
		rt.Logf("step %d: %s round under fault %s: injected %q: %s, err %v", i, c.name, r, w.inj.Injected()[before:], modelResult(res), err)
		if err != nil || rapid.IntRange(0, 3).Draw(rt, "restart anyway") == 0 {
			if !cfg.lagAtRestart {
				w.inj.Reveal()
			}
			c.crash()
			rt.Logf("step %d: %s crashed and restarted", i, c.name)
		}
	default: // listing lag
		if cfg.lag {
			k := rapid.IntRange(0, 3).Draw(rt, "lag")
			w.inj.SetListLag(k)
			rt.Logf("step %d: listing lag %d", i, k)
		}
	}
}

func modelResult(r *Result) string {
	if r == nil {
		return "<nil>"
	}
	s := fmt.Sprintf("pulled %d deleted %d pushed %d conflicts %d collected %d", r.Pulled, r.Deleted, r.Pushed, r.Conflicts, r.Collected)
	if len(r.Waiting) > 0 {
		s += fmt.Sprintf(" waiting %q", r.Waiting)
	}
	if len(r.Problems) > 0 {
		s += fmt.Sprintf(" problems %q", r.Problems)
	}
	return s
}
