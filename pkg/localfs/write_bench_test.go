package localfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// BenchmarkWriteAtomicSmall writes 10,000 files of 4 KiB spread over 20 directories into a
// fresh folder, with 4 concurrent writers and Batch durability, as a pull of small files does.
// cpu-ns/file is the process's CPU time (user and system) per file where the platform reports
// it: on a shared machine it varies less than the wall time.
func BenchmarkWriteAtomicSmall(b *testing.B) {
	const files, dirs, writers = 10000, 20, 4
	data := bytes.Repeat([]byte("x"), 4096)
	names := make([]string, files)
	for i := range names {
		names[i] = fmt.Sprintf("dir%02d/file%05d.txt", i%dirs, i)
	}
	b.SetBytes(int64(files * len(data)))
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		base := b.TempDir()
		if err := os.Mkdir(filepath.Join(base, "root"), 0o755); err != nil {
			b.Fatal(err)
		}
		f, err := OpenFolder(filepath.Join(base, "root"), Options{TrashDir: filepath.Join(base, "trash"), Durability: Batch})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cpu0 := cpuTime()
		jobs := make(chan string)
		errs := make(chan error, writers)
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				for name := range jobs {
					if err := f.WriteAtomic(name, bytes.NewReader(data), FileMeta{ModTime: mt1}, &Expect{}); err != nil {
						select {
						case errs <- err:
						default:
						}
					}
				}
			})
		}
		for _, n := range names {
			jobs <- n
		}
		close(jobs)
		wg.Wait()
		b.StopTimer()
		cpu += cpuTime() - cpu0
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		f.Close()
		os.RemoveAll(base) // keep the disk from filling over many iterations
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*files), "ns/file")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*files), "cpu-ns/file")
}
