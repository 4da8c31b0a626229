package state

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// rssFile is the process's resident file-backed memory (/proc/self/status).
func rssFile(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skip("no RssFile in /proc/self/status")
	return 0
}

// A pass over every record counts the state file's pages as the process's
// memory until ReleaseMapped; after it they are gone from the resident set,
// and every record still reads back the same, in and out of a transaction.
func TestReleaseMappedShrinksResidentSet(t *testing.T) {
	db, _ := openTemp(t)
	defer db.Close()
	const n, size = 40_000, 400 // 16 MB of records
	value := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, size) }
	if err := db.Update(func(tx *Tx) error {
		b, err := tx.Bucket("files")
		if err != nil {
			return err
		}
		for i := range n {
			if err := b.Put([]byte(fmt.Sprintf("path/%08d", i)), value(i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.ReleaseMapped()
	readAll := func(release bool) {
		t.Helper()
		i := 0
		if err := db.View(func(tx *Tx) error {
			b, err := tx.Bucket("files")
			if err != nil {
				return err
			}
			return b.ForEach(nil, func(k, v []byte) error {
				if !bytes.Equal(v, value(i)) {
					return fmt.Errorf("record %s reads back wrong", k)
				}
				if i++; release && i%10_000 == 0 {
					tx.ReleaseMapped()
				}
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		if i != n {
			t.Fatalf("read %d records, want %d", i, n)
		}
	}
	before := rssFile(t)
	readAll(false)
	read := rssFile(t)
	if read-before < 8<<20 {
		t.Fatalf("reading 16 MB of records added %d bytes of file-backed memory; the test cannot see a release", read-before)
	}
	db.ReleaseMapped()
	after := rssFile(t)
	if read-after < (read-before)/2 {
		t.Fatalf("file-backed memory: %d before the pass, %d after it, %d after ReleaseMapped", before, read, after)
	}
	readAll(true) // released in the middle of a transaction: still the same records
	t.Logf("file-backed memory: %d MB before, %d MB after reading 16 MB, %d MB after ReleaseMapped", before>>20, read>>20, after>>20)
}
