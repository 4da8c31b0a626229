package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/state"
)

// referenceChanges is localChanges as it was before the streaming walk:
// every record decoded, a set of the paths seen. The walk must agree with it.
func referenceChanges(e *Engine, lv *localView) ([]localChange, error) {
	var out []localChange
	err := e.db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketFiles)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		if err := b.ForEach(nil, func(k, v []byte) error {
			path := string(k)
			seen[path] = true
			var st fileState
			if err := json.Unmarshal(v, &st); err != nil {
				return err
			}
			if st.Retire && st.Have == nil {
				if le, mod := lv.modified(path, &st); !mod && !lv.isUncertain(path) {
					out = append(out, localChange{path: path, le: le, st: &st, retire: true})
					return nil
				}
			}
			if st.Kind == protocol.KindDelete && lv.entries[path] == nil {
				return nil
			}
			if st.Kind != protocol.KindDelete && lv.entries[path] == nil && e.opts.Filter != nil && !e.opts.Filter.Match(path, false) {
				return nil
			}
			if le, mod := lv.modified(path, &st); mod {
				out = append(out, localChange{path: path, le: le, st: &st})
			}
			return nil
		}); err != nil {
			return err
		}
		for path, le := range lv.entries {
			if !seen[path] && !lv.isUncertain(path) {
				out = append(out, localChange{path: path, le: le})
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, err
}

// describe renders changes as "path:what" for comparison.
func describe(changes []localChange) []string {
	var out []string
	for _, lc := range changes {
		what := "changed"
		switch {
		case lc.retire:
			what = "retire"
		case lc.le == nil:
			what = "deleted"
		case lc.st == nil:
			what = "new"
		case lc.st.Kind == protocol.KindDelete:
			what = "recreated"
		}
		if lc.le != nil {
			what += "/" + lc.le.Kind.String()
		}
		out = append(out, lc.path+":"+what)
	}
	return out
}

// checkLocalChanges scans c's folder and checks localChanges against want
// and against the reference, twice on the same view (its marks must reset).
func checkLocalChanges(t *testing.T, c *client, want []string) {
	t.Helper()
	lv, err := c.e.scanLocal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ref, err := referenceChanges(c.e, lv)
	if err != nil {
		t.Fatal(err)
	}
	for pass := 1; pass <= 2; pass++ {
		got, err := c.e.localChanges(lv)
		if err != nil {
			t.Fatal(err)
		}
		if g, r := describe(got), describe(ref); !slices.Equal(g, r) {
			t.Fatalf("pass %d: localChanges\n got %q\nreference %q", pass, g, r)
		}
		if g := describe(got); !slices.Equal(g, want) {
			t.Fatalf("pass %d: localChanges\n got %q\nwant %q", pass, g, want)
		}
		for _, le := range lv.entries {
			if le.seen {
				t.Fatalf("pass %d: a seen mark was left set", pass)
			}
		}
	}
}

// TestLocalChangesWalk covers what the walk of the state beside the scan
// must tell apart, with names whose order differs between the state's keys
// (bytewise: "a.b" < "a/b" < "a0") and the scan ("a/b" < "a.b").
func TestLocalChangesWalk(t *testing.T) {
	w := newWorld(t)
	c := w.client("a")
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, p := range []string{"a", "a.b", "a/b", "a/b/c", "a0", "a-b", "b/c/d", "x", "same", "ab/z"} {
		if p == "a" || p == "a/b" {
			continue // folders here
		}
		c.write(p, "content of "+p, old)
	}
	if err := os.Symlink("a.b", filepath.Join(c.dir, "l")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("x", filepath.Join(c.dir, "l2")); err != nil {
		t.Fatal(err)
	}
	checkLocalChanges(t, c, []string{
		"a-b:new/file", "a.b:new/file", "a/b/c:new/file", "a0:new/file", "ab/z:new/file",
		"b/c/d:new/file", "l:new/symlink", "l2:new/symlink", "same:new/file", "x:new/file",
	})
	c.round()
	checkLocalChanges(t, c, nil)

	// Added beside every neighbour, removed, changed in size, in mtime only,
	// in content only (same size and mtime: the hash), file→folder,
	// folder→file, file→symlink, symlink→file, symlink retargeted, exec bit.
	c.write("a/b/c2", "new", old)
	c.write("a.a", "new", old)
	c.write("a/b.c", "new", old)
	c.write("a1", "new", old)
	rm(t, c, "a0")
	c.write("a.b", "content of a.b, longer", old)
	touch(t, c, "ab/z", old.Add(time.Hour))
	rm(t, c, "a-b")
	c.write("a-b/inner", "now a folder", old)
	rm(t, c, "b/c")
	c.write("b/c", "now a file", old)
	rm(t, c, "x")
	if err := os.Symlink("a.b", filepath.Join(c.dir, "x")); err != nil {
		t.Fatal(err)
	}
	rm(t, c, "l")
	c.write("l", "now a file", old)
	rm(t, c, "l2")
	if err := os.Symlink("y", filepath.Join(c.dir, "l2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(c.dir, "same"), 0o755); err != nil {
		t.Fatal(err)
	}
	checkLocalChanges(t, c, []string{
		"a-b:deleted", "a-b/inner:new/file", "a.a:new/file", "a.b:changed/file",
		"a/b.c:new/file", "a/b/c2:new/file", "a0:deleted", "a1:new/file", "ab/z:changed/file",
		"b/c:new/file", "b/c/d:deleted", "l:changed/file", "l2:changed/symlink",
		"same:changed/file", "x:changed/symlink",
	})
	c.round()
	checkLocalChanges(t, c, nil)

	// The tombstones of the deleted paths stay in the state: recreating one
	// is a change against its tombstone, not a new path.
	c.write("a0", "back", old)
	checkLocalChanges(t, c, []string{"a0:recreated/file"})
	c.round()
	checkLocalChanges(t, c, nil)

	// Same size, same mtime, other content: only the hash tells.
	p := filepath.Join(c.dir, "a1")
	if err := os.WriteFile(p, []byte("wen"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	checkLocalChanges(t, c, []string{"a1:changed/file"})
}

func rm(t *testing.T, c *client, rel string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(c.dir, rel)); err != nil {
		t.Fatal(err)
	}
}

func touch(t *testing.T, c *client, rel string, at time.Time) {
	t.Helper()
	if err := os.Chtimes(filepath.Join(c.dir, rel), at, at); err != nil {
		t.Fatal(err)
	}
}

// stateSamples are records as putJSON writes them, and hand-made ones.
func stateSamples() [][]byte {
	hash := strings.Repeat("ab", 32)
	states := []fileState{
		{Kind: protocol.KindFile, Version: protocol.Vector{"c1": 3, "c2": 1}, By: "a", Hash: hash, Size: 29, MTime: 1796281997655914147, Mode: 0o644},
		{Kind: protocol.KindFile, Hash: hash, MTime: -5, Mode: 0o755, Pulled: true, Chunks: []protocol.Ref{{Obj: "o", Off: 1, Len: 2}}},
		{Kind: protocol.KindSymlink, Version: protocol.Vector{"c": 1}, By: `we"ird\name`, Hash: hash, Target: "../a b/ü"},
		{Kind: protocol.KindSymlink, Hash: hash, Target: `quo"te`},
		{Kind: protocol.KindDelete, Version: protocol.Vector{"c": 9}, By: "b"},
		{Kind: protocol.KindFile, Hash: hash, Retire: true},
		{Kind: protocol.KindFile, Hash: hash, Have: &haveState{Kind: protocol.KindFile, Hash: hash}},
		{Kind: protocol.KindFile, Hash: hash, Origin: protocol.Vector{"x": 1}, Rivals: []protocol.Rival{{Kind: protocol.KindFile, Version: protocol.Vector{"y": 2}, By: "}{,", Hash: hash}}},
		{},
	}
	var out [][]byte
	for _, st := range states {
		b, err := json.Marshal(&st)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return append(out,
		[]byte(` { "k" : "file" , "h" : "00", "m" : 12 , "mo" : 420 } `),
		[]byte(`{"k":"file","m":1.5}`),
		[]byte(`{"k":"file","m":1e3}`),
		[]byte(`{"k":"file","mo":-1}`),
		[]byte(`{"k":"file","mo":4294967296}`),
		[]byte(`{"k":"file","m":-9223372036854775808}`),
		[]byte(`{"k":"file","m":9223372036854775808}`),
		[]byte(`{"k":"file","m":01}`),
		[]byte(`{"K":"file"}`),
		[]byte(`{"k":"file","v":{"a":1]}`),
		[]byte(`{"k":"file","h":"ab"`),
		[]byte(`{"k":"file"}x`),
		[]byte(`{"k":null}`),
		[]byte(`{"k":"fi\u006ce"}`),
		[]byte(`{"k":"file","k":"delete"}`),
		[]byte(`{"k":"file","by":"a\"},\"hv\":{"}`),
		[]byte(`{"k":"file","c":[{"o":"}"}],"h":"x"}`),
		[]byte(`{"k":"","c":}`),
		[]byte(`{"k":"file","s":"x"}`),
		[]byte(`{"k":"file","v":{"a":tru}}`),
		[]byte(`{"k":"file","v":{"a":"\x"}}`),
		[]byte(`{"k":"file","r":[1,2,{"a":[null,-0.5e+3]}],"s":-0}`),
		[]byte("{\"k\":\"symlink\",\"t\":\"\xff\"}"),
		[]byte(`[]`),
		[]byte(``),
	)
}

// checkView: whatever viewState accepts is JSON and, unless a field it
// skips has the wrong type (putJSON never writes one), decodes to the same
// fields, with no Have and no Retire.
func checkView(t *testing.T, v []byte) {
	sv, ok := viewState(v)
	if !ok {
		return
	}
	if !json.Valid(v) {
		t.Fatalf("viewState accepted %q, which is not JSON", v)
	}
	var st fileState
	if err := json.Unmarshal(v, &st); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && !slices.Contains([]string{"k", "h", "t", "m", "mo"}, te.Field) {
			return
		}
		t.Fatalf("viewState accepted %q, which does not decode: %v", v, err)
	}
	got := fmt.Sprintf("%q %q %q %d %o", sv.kind, sv.hash, sv.target, sv.mtime, sv.mode)
	want := fmt.Sprintf("%q %q %q %d %o", st.Kind, st.Hash, st.Target, st.MTime, st.Mode)
	if got != want || st.Have != nil || st.Retire {
		t.Fatalf("viewState(%q) = %s, decoding gives %s (have %v, retire %v)", v, got, want, st.Have != nil, st.Retire)
	}
}

func TestViewStateAgreesWithDecoding(t *testing.T) {
	accepted := 0
	for _, v := range stateSamples() {
		checkView(t, v)
		if _, ok := viewState(v); ok {
			accepted++
		}
	}
	// The plain records putJSON writes must take the fast path.
	for i, want := range []bool{true, true, true, false, true, false, false, true, true} {
		v := stateSamples()[i]
		if _, ok := viewState(v); ok != want {
			t.Errorf("viewState(%s): ok = %v, want %v", v, ok, want)
		}
	}
	if accepted < 6 {
		t.Fatalf("only %d samples took the fast path", accepted)
	}
}

// TestViewStateKnowsEveryField fills every field of a fileState but Have and
// Retire: a field added to fileState without teaching viewState would send
// every record of every round to the slow path.
func TestViewStateKnowsEveryField(t *testing.T) {
	var st fileState
	fill(reflect.ValueOf(&st).Elem())
	st.Have, st.Retire, st.Kind, st.Target = nil, false, protocol.KindSymlink, "t"
	v, err := json.Marshal(&st)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := viewState(v); !ok {
		t.Fatalf("viewState refuses %s: teach it the new field (skip it, or read it if modified() does)", v)
	}
	checkView(t, v)
}

// fill sets every field reachable from v to a non-zero value.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("s")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	}
}

func FuzzViewState(f *testing.F) {
	for _, v := range stateSamples() {
		f.Add(v)
	}
	f.Fuzz(checkView)
}
