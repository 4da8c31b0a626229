package engine

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/storage"
	"github.com/escale-sync/escale/pkg/storage/faulty"
	"github.com/escale-sync/escale/pkg/storage/testserver"
)

// benchEngine is a client of the relay spec with its folder and state
// under root, for benchmarks (the world helpers take a *testing.T).
func benchEngine(b *testing.B, spec, root, name string) (*Engine, string) {
	b.Helper()
	relay, err := storage.Open(context.Background(), spec)
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	e, err := New(context.Background(), relay, Options{
		Name: "bench", Path: dir, Client: name, Mode: Shared,
		StateDir:    filepath.Join(root, "state-"+name),
		Encrypted:   true,
		Credentials: protocol.Credentials{Passphrase: "correct horse battery staple"},
		KeyOptions:  []envelope.Option{envelope.WithScryptWorkFactor(10)},
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	return e, dir
}

// BenchmarkBigFilePushPull moves one 64 MiB file of random data through a
// relay: the push (chunk, hash, seal, upload) then the pull (read, open,
// write), the "4 × 256 MiB" case in small. local is a relay folder;
// sftp and webdav are rclone's servers on loopback. rclone's WebDAV client
// paces its calls (pacer_min_sleep, 10 ms), and each chunk object costs
// several calls there: that relay measures the number of objects more than
// the transfers in flight.
func BenchmarkBigFilePushPull(b *testing.B) {
	data := benchData(64<<20, false)
	relays := map[string]func(b *testing.B, root string) string{
		"local": func(b *testing.B, root string) string {
			dir := filepath.Join(root, "relay")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			return dir
		},
		"sftp": func(b *testing.B, _ string) string {
			srv := testserver.RcloneSFTP(b)
			b.Cleanup(srv.Stop)
			return srv.Spec
		},
		"webdav": func(b *testing.B, _ string) string {
			srv := testserver.RcloneWebDAV(b)
			b.Cleanup(srv.Stop)
			return srv.Spec
		},
	}
	for _, name := range []string{"local", "sftp", "webdav"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var push, pull time.Duration
			for b.Loop() {
				b.StopTimer()
				root := b.TempDir()
				spec := relays[name](b, root)
				a, adir := benchEngine(b, spec, root, "alpha")
				bb, bdir := benchEngine(b, spec, root, "beta")
				if err := os.WriteFile(filepath.Join(adir, "big.bin"), data, 0o644); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				t0 := time.Now()
				if _, err := a.Round(context.Background()); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if _, err := bb.Round(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				push += t1.Sub(t0)
				pull += time.Since(t1)
				if fi, err := os.Stat(filepath.Join(bdir, "big.bin")); err != nil || fi.Size() != int64(len(data)) {
					b.Fatalf("beta's copy: %v, %v", fi, err)
				}
				a.Close()
				bb.Close()
				b.StartTimer()
			}
			// The two halves, to see which one a change moved.
			b.ReportMetric(push.Seconds()*1000/float64(b.N), "push-ms/op")
			b.ReportMetric(pull.Seconds()*1000/float64(b.N), "pull-ms/op")
		})
	}
}

// bigContent is a file of several chunks with a run of zeros in the middle:
// the zeros cut into many identical chunks, uploaded and fetched once.
func bigContent(t *testing.T) []byte {
	var data []byte
	data = append(data, randomBytes(t, 9<<20+123)...)
	data = append(data, make([]byte, 5<<20)...)
	data = append(data, randomBytes(t, 3<<20+77)...)
	return data
}

// smallPacks packs a big file's chunks by 1 MiB, so the files of these
// tests make many data objects, as a big file does with the real size.
func smallPacks(o *Options) { o.ChunkPackSize = 1 << 20 }

func writeBig(t *testing.T, c *client, rel string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, rel), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A big file goes through a real server with several chunks in flight both
// ways: whole, then as a delta against the puller's base.
func TestBigFileRoundTripOverServers(t *testing.T) {
	// rclone's one-time setup first: run while one of its servers already
	// serves, it races with it (go test -race).
	if _, err := storage.Open(context.Background(), t.TempDir()); err != nil {
		t.Fatal(err)
	}
	for _, start := range []func(testing.TB) *testserver.Server{testserver.RcloneWebDAV, testserver.RcloneSFTP} {
		srv := start(t)
		t.Run(srv.Name, func(t *testing.T) {
			w := newWorld(t)
			var up, down int64
			clientOn := func(name string, progress *int64) *client {
				relay, err := storage.Open(context.Background(), srv.Spec)
				if err != nil {
					t.Fatal(err)
				}
				return w.clientWithRelay(name, relay, smallPacks, func(o *Options) { o.Progress = func(n int64) { *progress += n } })
			}
			a, b := clientOn("alpha", &up), clientOn("beta", &down)
			data := bigContent(t)
			writeBig(t, a, "big.bin", data)
			ra, rb := a.round(), b.round()
			if got, _ := b.read("big.bin"); got != string(data) {
				t.Fatal("beta's copy differs")
			}
			// Each object sent is read once: the zeros' repeated chunk too.
			if ra.ObjectsUp < 8 || rb.ObjectsDown != ra.ObjectsUp {
				t.Fatalf("alpha sent %d objects, beta read %d; want the same, and several", ra.ObjectsUp, rb.ObjectsDown)
			}
			if up != ra.BytesUp || down != rb.BytesDown {
				t.Fatalf("progress heard %d up and %d down; the rounds moved %d and %d", up, down, ra.BytesUp, rb.BytesDown)
			}
			a.round()
			// A change at each end and one in the middle: beta takes the rest
			// from its own copy.
			copy(data[100:], randomBytes(t, 1000))
			copy(data[11<<20:], randomBytes(t, 300<<10))
			copy(data[len(data)-500:], randomBytes(t, 500))
			writeBig(t, a, "big.bin", data)
			ra, rb = a.round(), b.round()
			if got, _ := b.read("big.bin"); got != string(data) {
				t.Fatal("beta's copy differs after the delta")
			}
			if rb.BytesDown > 4*chunkMax+4*64<<10 || rb.ObjectsDown != ra.ObjectsUp {
				t.Fatalf("a 3-place change moved %d bytes down in %d objects (%d up)", rb.BytesDown, rb.ObjectsDown, ra.ObjectsUp)
			}
			sameTrees(t, a, b)
		})
	}
}

// settleGoroutines fails unless the goroutine count comes back to at most
// before: nothing a cancelled round started is left running.
func settleGoroutines(t *testing.T, before int) {
	t.Helper()
	for range 500 {
		if runtime.NumGoroutine() <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("%d goroutines, %d before the round:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
}

// A round cancelled while chunks are in flight, in either direction, stops
// them all and leaves nothing running; the next round finishes the job.
func TestBigFileCancelledMidwayLeaksNothing(t *testing.T) {
	w := newWorld(t)
	var cancelAt int64 // bytes after which the round is cancelled; 0: never
	var moved int64
	var cancel context.CancelFunc
	hook := func(o *Options) {
		o.Progress = func(n int64) {
			moved += n
			if cancelAt > 0 && moved > cancelAt && cancel != nil {
				cancel()
			}
		}
	}
	a, b := w.client("alpha", hook, smallPacks), w.client("beta", hook, smallPacks)
	// Warm up: every lazily started goroutine (relay, state) exists now.
	a.write("small.txt", "warm-up", time.Time{})
	a.round()
	b.round()
	before := runtime.NumGoroutine()
	data := bigContent(t)
	writeBig(t, a, "big.bin", data)

	cutRound := func(c *client) {
		t.Helper()
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		defer cancel()
		moved, cancelAt = 0, 3<<20
		_, err := c.e.Round(ctx)
		cancelAt = 0
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("round of %s cancelled midway: %v, want context.Canceled", c.name, err)
		}
		if moved >= int64(len(data)) {
			t.Fatalf("%s moved %d bytes of %d before the cancellation took", c.name, moved, len(data))
		}
		settleGoroutines(t, before)
	}
	cutRound(a)
	a.round()
	cutRound(b)
	if _, ok := b.read("big.bin"); ok {
		t.Fatal("a cancelled pull left a file")
	}
	b.round()
	if got, _ := b.read("big.bin"); got != string(data) {
		t.Fatal("beta's copy differs")
	}
	sameTrees(t, a, b)
}

// One chunk upload fails midway through the file, leaving a cut object
// behind: the round fails, and the next one sends only what is missing and
// converges. A chunk read that breaks midway on the pull is retried too.
func TestBigFileChunkFailsMidwayResumes(t *testing.T) {
	w := newWorld(t)
	inj, onFaulty := w.faultyClients(t)
	a, b := onFaulty("alpha", smallPacks), onFaulty("beta", smallPacks)
	data := randomBytes(t, 12<<20)
	writeBig(t, a, "big.bin", data)
	inj.Add(faulty.Rule{Op: faulty.OpPut, Name: "clients/*/data/*", After: 4, Fault: faulty.PartialPut})
	if _, err := a.e.Round(context.Background()); err == nil {
		t.Fatal("the round succeeded although a chunk upload failed")
	}
	if got := inj.Injected(); len(got) != 1 {
		t.Fatalf("injected %v, want one cut upload", got)
	}
	r := a.round()
	if r.Pushed != 1 {
		t.Fatalf("pushed %d changes after the failure, want 1", r.Pushed)
	}
	// The four packs that went up before the failure are not sent again.
	if r.BytesUp > int64(len(data))-4*chunkMin+64<<10 {
		t.Fatalf("the resumed push sent %d bytes of a %d-byte file", r.BytesUp, len(data))
	}
	inj.Add(faulty.Rule{Op: faulty.OpOpen, Name: "clients/*/data/*", After: 3, Fault: faulty.Reset})
	if _, err := b.e.Round(context.Background()); err == nil {
		if got, _ := b.read("big.bin"); got == string(data) {
			t.Fatal("the pull got the file although a chunk read broke")
		}
	}
	b.round()
	if got, _ := b.read("big.bin"); got != string(data) {
		t.Fatal("beta's copy differs")
	}
	a.round()
	b.round()
	a.round()
	if left := w.relayData(); len(left) != 0 {
		t.Fatalf("left on the relay: %v", left)
	}
}

// A chunk object gone from the relay surfaces as missing data through the
// read-ahead: the puller asks for the file again and gets it.
func TestBigFileMissingChunkAskedAgain(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha", smallPacks), w.client("beta", smallPacks)
	data := randomBytes(t, 10<<20)
	writeBig(t, a, "big.bin", data)
	a.round()
	objs := w.relayData()
	var chunks []string
	for _, p := range objs {
		if strings.Contains(p, "/data/") {
			chunks = append(chunks, p)
		}
	}
	if len(chunks) < 6 {
		t.Fatalf("%d chunk packs on the relay, want several", len(chunks))
	}
	sort.Strings(chunks)
	if err := os.Remove(chunks[len(chunks)/2]); err != nil {
		t.Fatal(err)
	}
	rb := b.round()
	if _, ok := b.read("big.bin"); ok {
		t.Fatal("beta wrote the file without one of its chunks")
	}
	asked := false
	for _, msg := range rb.Waiting {
		asked = asked || strings.Contains(msg, "asked for big.bin")
	}
	if !asked {
		t.Fatalf("beta did not ask for the file again: %v", rb.Waiting)
	}
	a.round()
	b.round()
	if got, _ := b.read("big.bin"); got != string(data) {
		t.Fatal("beta's copy differs after the file was sent again")
	}
}

// A big file whose chunks are version 1 chunk objects, one object each
// (relays written before chunk packs), is still pulled: clients of a
// version 1 relay keep syncing while they upgrade.
func TestVersion1ChunkObjectsStillPull(t *testing.T) {
	s := newHostile(t)
	var content []byte
	var refs []protocol.Ref
	for _, n := range []int{chunkMin + 17, chunkMax, chunkMin} {
		chunk := randomBytes(t, n)
		sum := blake3.Sum256(chunk)
		id := s.a.e.repo.ObjectID([]byte("chunk"), sum[:])
		s.f.tp.save(protocol.DataName(s.a.e.CID(), id))
		s.a.putData(envelope.KindChunk, id, chunk)
		refs = append(refs, protocol.Ref{Obj: id, Size: int64(n), Hash: hex.EncodeToString(sum[:])})
		content = append(content, chunk...)
	}
	m := s.f.manifest(protocol.Change{Path: "old.bin", Kind: protocol.KindFile, Version: protocol.Vector{s.a.e.CID(): 100}, By: "alpha",
		Hash: blake(content), Size: int64(len(content)), MTime: fixedTime().UnixNano(), Mode: 0o644, Data: refs})
	m.V = 1
	s.f.publish(m)
	r := s.b.ok()
	if got, _ := s.b.read("old.bin"); got != string(content) {
		t.Fatal("beta's copy of a version 1 big file differs")
	}
	if r.ObjectsDown != len(refs) {
		t.Fatalf("beta read %d objects for %d version 1 chunks", r.ObjectsDown, len(refs))
	}
}

// A big file's new chunks travel in packs of ChunkPackSize, not an object
// each, and each pack is read once.
func TestBigFileChunksTravelInPacks(t *testing.T) {
	w := newWorld(t)
	a, b := w.client("alpha"), w.client("beta")
	data := randomBytes(t, 20<<20)
	writeBig(t, a, "big.bin", data)
	ra, rb := a.round(), b.round()
	if got, _ := b.read("big.bin"); got != string(data) {
		t.Fatal("beta's copy differs")
	}
	// 20 MiB in packs of at most 8 MiB (plus the chunk that crosses).
	if ra.ObjectsUp < 3 || ra.ObjectsUp > 4 || rb.ObjectsDown != ra.ObjectsUp {
		t.Fatalf("alpha sent %d objects, beta read %d; want 3 or 4 packs, each read once", ra.ObjectsUp, rb.ObjectsDown)
	}
	m := a.manifest(1)
	if m.V != protocol.Version {
		t.Fatalf("manifest version %d, want %d", m.V, protocol.Version)
	}
	packs := map[string]int64{} // pack → end of its last chunk
	for _, r := range m.Changes[0].Data {
		if r.Len != r.Size || r.Z || r.Off != packs[r.Obj] {
			t.Fatalf("chunk reference %+v: want chunks one after the other, stored as is", r)
		}
		packs[r.Obj] = r.Off + r.Len
	}
	if len(packs) != ra.ObjectsUp {
		t.Fatalf("the manifest names %d packs, alpha sent %d objects", len(packs), ra.ObjectsUp)
	}
}
