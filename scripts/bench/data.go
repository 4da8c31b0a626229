package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
)

// perDir files per folder: trees look like real ones, not one huge folder.
const perDir = 100

// random is a seeded stream: every run of the harness writes the same data.
func random(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	for i := 0; i < 8; i++ {
		s[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(s)
}

func filePath(root string, i int) string {
	return filepath.Join(root, fmt.Sprintf("d%04d", i/perDir), fmt.Sprintf("f%07d.bin", i))
}

// genRandom writes n files of size random bytes (incompressible, like
// photos or archives) and returns the bytes written.
func genRandom(root string, n int, size int64, seed uint64) (int64, error) {
	rng := random(seed)
	buf := make([]byte, min(size, 1<<20))
	for i := 0; i < n; i++ {
		p := filePath(root, i)
		if i%perDir == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return 0, err
			}
		}
		f, err := os.Create(p)
		if err != nil {
			return 0, err
		}
		for left := size; left > 0; {
			b := buf[:min(left, int64(len(buf)))]
			_, _ = rng.Read(b)
			if _, err := f.Write(b); err != nil {
				f.Close()
				return 0, err
			}
			left -= int64(len(b))
		}
		if err := f.Close(); err != nil {
			return 0, err
		}
	}
	return int64(n) * size, nil
}

// genTiny writes n small distinct text files with two writers, for the
// big-tree workloads where the file count, not the bytes, is the load.
func genTiny(root string, n int) (int64, error) {
	var total int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var sum int64
			for d := w; d*perDir < n; d += 2 {
				if err := os.MkdirAll(filepath.Dir(filePath(root, d*perDir)), 0o755); err != nil {
					errs <- err
					return
				}
				for i := d * perDir; i < min(n, (d+1)*perDir); i++ {
					b := []byte(fmt.Sprintf("file %d of the benchmark tree\n", i))
					if err := os.WriteFile(filePath(root, i), b, 0o644); err != nil {
						errs <- err
						return
					}
					sum += int64(len(b))
				}
			}
			mu.Lock()
			total += sum
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	close(errs)
	return total, <-errs
}

// scribble overwrites count random extents of extent bytes in file, the
// way an application edits a big file in place.
func scribble(file string, count int, extent int64, seed uint64) error {
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	rng := random(seed)
	r := rand.New(rng)
	buf := make([]byte, extent)
	for i := 0; i < count; i++ {
		_, _ = rng.Read(buf)
		off := r.Int64N(st.Size() - extent)
		if _, err := f.WriteAt(buf, off); err != nil {
			return err
		}
	}
	return f.Close()
}

// treeSize is the bytes and regular files below root (0 if it is absent).
func treeSize(root string) (bytes int64, files int, err error) {
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == root {
				return filepath.SkipDir
			}
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			bytes += info.Size()
			files++
		}
		return nil
	})
	return bytes, files, err
}

// sameTree checks that b holds exactly a's regular files with the same
// bytes: a figure whose copy is wrong is void.
func sameTree(ctx context.Context, a, b string) error {
	count := 0
	err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		count++
		return sameFile(p, filepath.Join(b, rel))
	})
	if err != nil {
		return err
	}
	_, nb, err := treeSize(b)
	if err != nil {
		return err
	}
	if nb != count {
		return fmt.Errorf("%s holds %d files, %s %d", b, nb, a, count)
	}
	return nil
}

func sameFile(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return fmt.Errorf("missing on the receiving side: %w", err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return fmt.Errorf("%s differs from %s", b, a)
		}
		if ea != nil || eb != nil {
			if (ea == io.EOF || ea == io.ErrUnexpectedEOF) && (eb == io.EOF || eb == io.ErrUnexpectedEOF) {
				return nil
			}
			return fmt.Errorf("compare %s: %v %v", b, ea, eb)
		}
	}
}
