package state

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestMain doubles as a helper process that holds a state file open, so the
// "in use" test can use a real second process.
func TestMain(m *testing.M) {
	if path := os.Getenv("ESCALE_STATE_TEST_HOLD"); path != "" {
		db, err := Open(path)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
		// Hold until the parent closes our stdin.
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		db.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nested", "dir", "state.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return db, path
}

func rec(seed byte) FileRecord {
	r := FileRecord{
		Size: int64(seed) * 1000, ModTimeNs: 1700000000123456789 + int64(seed),
		ChangeTimeNs: 1700000000999999999 - int64(seed), Inode: 1<<40 + uint64(seed),
		Mode: 0o100644, CheckedAt: -int64(seed),
	}
	for i := range r.Hash {
		r.Hash[i] = seed ^ byte(i)
	}
	return r
}

func TestHashCachePersistsAcrossReopen(t *testing.T) {
	db, path := openTemp(t)
	hc := db.HashCache()
	want := map[string]FileRecord{"a": rec(1), "dir/b": rec(2), "dir/sub/c d": rec(3), "dir\u00e9/x": rec(4)}
	for p, r := range want {
		if err := hc.Put(p, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	hc = db.HashCache()
	for p, r := range want {
		got, ok, err := hc.Get(p)
		if err != nil || !ok || got != r {
			t.Errorf("Get(%q) = %+v, %v, %v; want %+v", p, got, ok, err, r)
		}
	}
	if _, ok, err := hc.Get("dir"); ok || err != nil {
		t.Errorf("Get(dir) found=%v err=%v, want absent", ok, err)
	}
	if err := hc.Delete("dir/b"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := hc.Get("dir/b"); ok {
		t.Error("dir/b still cached after Delete")
	}
	if n, _ := hc.Len(); n != 3 {
		t.Errorf("Len = %d, want 3", n)
	}
}

func TestHashCacheRejectsBadPaths(t *testing.T) {
	db, _ := openTemp(t)
	defer db.Close()
	for _, p := range []string{"", "/abs", "a/", "nul\x00byte"} {
		if err := db.HashCache().Put(p, rec(1)); err == nil {
			t.Errorf("Put(%q) accepted", p)
		}
	}
}

func TestLookupDir(t *testing.T) {
	db, _ := openTemp(t)
	defer db.Close()
	hc := db.HashCache()
	// "d" children: a, c, e; deeper and sibling dirs must not leak in.
	err := hc.PutBatch([]KV{
		{"d/a", rec(1)}, {"d/c", rec(3)}, {"d/e", rec(5)},
		{"d/sub/x", rec(6)}, {"d-x/a", rec(7)}, {"dd/a", rec(8)}, {"top", rec(9)},
	})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "b", "c", "f"}
	out := make([]FileRecord, len(names))
	found := make([]bool, len(names))
	stale, err := hc.LookupDir("d", names, out, found)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(found, []bool{true, false, true, false}) {
		t.Errorf("found = %v", found)
	}
	if out[0] != rec(1) || out[2] != rec(3) {
		t.Errorf("records = %+v", out)
	}
	if !slices.Equal(stale, []string{"e"}) {
		t.Errorf("stale = %v, want [e]", stale)
	}
	// Root directory.
	stale, err = hc.LookupDir("", []string{"top"}, out, found)
	if err != nil || !found[0] || out[0] != rec(9) || len(stale) != 0 {
		t.Errorf("root lookup: found=%v rec=%v stale=%v err=%v", found[0], out[0], stale, err)
	}
}

func TestPruneDirs(t *testing.T) {
	db, _ := openTemp(t)
	defer db.Close()
	hc := db.HashCache()
	var kvs []KV
	for _, d := range []string{"", "a", "a/b", "a-b", "c"} {
		for i := range 3 {
			kvs = append(kvs, KV{Path: strings.TrimPrefix(d+"/f"+strconv.Itoa(i), "/"), Record: rec(byte(i))})
		}
	}
	if err := hc.PutBatch(kvs); err != nil {
		t.Fatal(err)
	}
	var asked []string
	n, err := hc.PruneDirs(func(dir string) bool {
		asked = append(asked, dir)
		return dir != "a/b" && dir != "c"
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Errorf("pruned %d, want 6", n)
	}
	if !slices.Equal(asked, []string{"", "a", "a-b", "a/b", "c"}) {
		t.Errorf("keep asked about %q; want each directory once", asked)
	}
	for _, p := range []string{"f0", "a/f1", "a-b/f2"} {
		if _, ok, _ := hc.Get(p); !ok {
			t.Errorf("%s pruned, should stay", p)
		}
	}
	for _, p := range []string{"a/b/f0", "c/f2"} {
		if _, ok, _ := hc.Get(p); ok {
			t.Errorf("%s kept, should be pruned", p)
		}
	}
}

func TestBuckets(t *testing.T) {
	db, path := openTemp(t)
	err := db.Update(func(tx *Tx) error {
		b, err := tx.Bucket("versions")
		if err != nil {
			return err
		}
		for _, k := range []string{"x/1", "x/2", "y/1", "x"} {
			if err := b.Put([]byte(k), []byte("v"+k)); err != nil {
				return err
			}
		}
		if n, err := b.NextSequence(); err != nil || n != 1 {
			return fmt.Errorf("first sequence = %d, %v", n, err)
		}
		return b.Delete([]byte("y/1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	// A failed transaction leaves nothing behind.
	boom := errors.New("boom")
	err = db.Update(func(tx *Tx) error {
		b, _ := tx.Bucket("versions")
		_ = b.Put([]byte("x/3"), []byte("no"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want boom", err)
	}
	db.Close()

	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *Tx) error {
		b, err := tx.Bucket("versions")
		if err != nil {
			return err
		}
		var keys []string
		if err := b.ForEach([]byte("x/"), func(k, v []byte) error {
			if string(v) != "v"+string(k) {
				t.Errorf("%s = %s", k, v)
			}
			keys = append(keys, string(k))
			return nil
		}); err != nil {
			return err
		}
		if !slices.Equal(keys, []string{"x/1", "x/2"}) {
			t.Errorf("ForEach(x/) keys = %q", keys)
		}
		if b.Get([]byte("y/1")) != nil || b.Get([]byte("x/3")) != nil {
			t.Error("deleted or rolled-back key present")
		}
		if err := b.Put([]byte("k"), nil); err == nil {
			t.Error("Put in a read-only transaction succeeded")
		}
		missing, err := tx.Bucket("never-created")
		if err != nil {
			return err
		}
		if missing.Get([]byte("a")) != nil {
			t.Error("missing bucket returned a value")
		}
		return missing.ForEach(nil, func(k, v []byte) error { t.Error("missing bucket has keys"); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	// The sequence survived the reopen.
	if err := db.Update(func(tx *Tx) error {
		b, _ := tx.Bucket("versions")
		n, err := b.NextSequence()
		if n != 2 {
			t.Errorf("sequence after reopen = %d, want 2", n)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestSecondOpenInSameProcessTimesOut(t *testing.T) {
	db, path := openTemp(t)
	defer db.Close()
	_, err := Open(path)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open: %v, want ErrInUse", err)
	}
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("error %q does not name the holder's pid", err)
	}
}

func TestOpenHeldByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ESCALE_STATE_TEST_HOLD="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("helper: %q", line)
	}
	_, err = Open(path)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("Open while held: %v, want ErrInUse", err)
	}
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(cmd.Process.Pid)) {
		t.Errorf("error %q does not name pid %d", err, cmd.Process.Pid)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open after the holder exited: %v", err)
	}
	db.Close()
}

func TestNewerSchemaRefused(t *testing.T) {
	db, path := openTemp(t)
	db.Close()
	raw, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(metaBucket).Put(schemaKey, binary.BigEndian.AppendUint32(nil, SchemaVersion+1))
	})
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(path)
	if err == nil || !strings.Contains(err.Error(), "newer") || !strings.Contains(err.Error(), "upgrade escale") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

func TestUnknownRecordFormatRefused(t *testing.T) {
	db, path := openTemp(t)
	if err := db.HashCache().Put("f", rec(1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.Update(func(tx *bolt.Tx) error {
		k, _ := cacheKey("f")
		v := append([]byte{}, tx.Bucket(hashCacheBucket).Get(k)...)
		v[0] = recordFormat + 1
		return tx.Bucket(hashCacheBucket).Put(k, v)
	})
	raw.Close()
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, _, err := db.HashCache().Get("f"); err == nil || !strings.Contains(err.Error(), "upgrade escale") {
		t.Fatalf("Get of a newer record: %v", err)
	}
}

// TestKeyOrderedWritesFillPages: a bucket written in key order (as the
// engine writes its state) keeps its leaves nearly full, so a pass over a
// big state touches half the pages bbolt's default would leave.
func TestKeyOrderedWritesFillPages(t *testing.T) {
	db, _ := openTemp(t)
	const n = 20000
	val := bytes.Repeat([]byte("r"), 150)
	keys := make([]string, 0, n)
	for i := range n {
		keys = append(keys, fmt.Sprintf("dir%03d/file%06d", i%500, i))
	}
	slices.Sort(keys)
	if err := db.Update(func(tx *Tx) error {
		b, err := tx.Bucket("sorted")
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := b.Put([]byte(k), val); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		st := tx.Bucket([]byte(userBucketPrefix + "sorted")).Stats()
		if fill := float64(st.LeafInuse) / float64(st.LeafAlloc); fill < 0.8 {
			t.Errorf("leaves of a key-ordered bucket are %.0f%% full (%d of %d bytes), want at least 80%%", 100*fill, st.LeafInuse, st.LeafAlloc)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
