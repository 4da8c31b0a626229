package envelope

import (
	"bytes"
	"io"
	"testing"
	"time"
)

func reportCPU(b *testing.B, start time.Duration, size int) {
	if used := cpuTime(b) - start; used > 0 {
		b.ReportMetric(float64(size)*float64(b.N)/1e6/used.Seconds(), "MB/cpu-s")
	}
}

var benchCases = []struct {
	name string
	size int
	gen  func(uint64, int) []byte
}{
	{"64KiB/random", 64 << 10, randomBytes},
	{"64KiB/text", 64 << 10, textBytes},
	{"16MiB/random", 16 << 20, randomBytes},
	{"16MiB/text", 16 << 20, textBytes},
}

func BenchmarkSeal(b *testing.B) {
	kr := testKeyring(b, 1)
	s := NewSealer(kr)
	for _, c := range benchCases {
		plain := c.gen(1, c.size)
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(c.size))
			var sealed int64
			start := cpuTime(b)
			for b.Loop() {
				cw := &countWriter{}
				w, err := s.Seal(cw, KindChunk, "clients/a/data/x")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.Write(plain); err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				sealed = cw.n
			}
			reportCPU(b, start, c.size)
			b.ReportMetric(float64(sealed)/float64(c.size), "sealed/plain")
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	kr := testKeyring(b, 1)
	s, o := NewSealer(kr), NewOpener([]*Keyring{kr})
	for _, c := range benchCases {
		obj, err := s.SealBytes(KindChunk, "clients/a/data/x", c.gen(1, c.size))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(c.size))
			buf := make([]byte, 256<<10)
			start := cpuTime(b)
			for b.Loop() {
				r, err := o.Open(bytes.NewReader(obj), KindChunk, "clients/a/data/x", int64(c.size))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start, c.size)
		})
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
