package engine

import (
	"bytes"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"testing"

	"github.com/zeebo/blake3"
)

// Micro-benchmarks of the push's CPU work per byte: content-defined
// chunking of big files, blake3 hashing, and packing small files
// (compress, append). `make bench-micro` runs them with benchstat; the
// envelope's sealing is in pkg/envelope.

func benchData(size int, text bool) []byte {
	b := make([]byte, size)
	if !text {
		_, _ = mrand.NewChaCha8([32]byte{1}).Read(b)
		return b
	}
	// Text that compresses like source code or prose, about 3:1.
	r := mrand.New(mrand.NewPCG(1, 2))
	words := []string{"escale ", "relay ", "chunk ", "the ", "of ", "sync ", "folder ", "func ", "return ", "err ", "\n"}
	var buf bytes.Buffer
	for buf.Len() < size {
		buf.WriteString(words[r.IntN(len(words))])
	}
	return buf.Bytes()[:size]
}

// BenchmarkChunk cuts 64 MiB of random data at content-defined boundaries,
// as the push does for every file bigger than SmallFile.
func BenchmarkChunk(b *testing.B) {
	data := benchData(64<<20, false)
	p := newChunkParams([32]byte{7})
	buf := make([]byte, chunkMax)
	b.SetBytes(int64(len(data)))
	var chunks int
	for b.Loop() {
		c := p.new(bytes.NewReader(data), 0)
		chunks = 0
		for {
			_, err := c.Next(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			chunks++
		}
	}
	b.ReportMetric(float64(len(data))/float64(chunks)/1024, "KiB/chunk")
}

// BenchmarkHash is blake3 over a small file and over a chunk-sized block,
// the two sizes the push hashes.
func BenchmarkHash(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		data := benchData(size, false)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				_ = blake3.Sum256(data)
			}
		})
	}
}

// BenchmarkPack adds 4 KiB files to a pack the way the push does: try to
// compress each, keep the raw bytes when that does not pay, append, and
// start a new pack at the default size.
func BenchmarkPack(b *testing.B) {
	const file = 4 << 10
	for _, kind := range []string{"random", "text"} {
		data := benchData(16<<20, kind == "text")
		b.Run(kind, func(b *testing.B) {
			c := newCodec()
			pb := newPackBuilder(DefaultMaxPackSize)
			b.SetBytes(file)
			i := 0
			var stored, plain int64
			for b.Loop() {
				off := (i * file) % (len(data) - file)
				i++
				s, z := c.compress(nil, data[off:off+file])
				pb.add(s, z, file)
				stored += int64(len(s))
				plain += file
				if pb.size() >= DefaultMaxPackSize {
					pb.reset()
				}
			}
			b.ReportMetric(float64(stored)/float64(plain), "stored/plain")
		})
	}
}
