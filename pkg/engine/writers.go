package engine

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"

	"github.com/escale-sync/escale/pkg/localfs"
)

// pullWriters is how many pulled small files are written at once. Creating
// a file costs the kernel far more than its few kilobytes (a create, a
// rename, metadata), and the files of one manifest are independent, so a
// few workers keep both cores busy where one would wait on each syscall.
const pullWriters = 4

// smallWriter writes the small files of one manifest in the background.
// The puller reads and verifies each file's content itself (the fetcher is
// not shared), hands the bytes over, and records the state of each file
// once its write is done (finish): local state stays single-threaded.
type smallWriter struct {
	folder *localfs.Folder
	jobs   chan *writeJob
	done   chan *writeJob
	wg     sync.WaitGroup
	queued int // submitted and not yet finished
}

// writeJob is one file to write, with what to record when it is written.
type writeJob struct {
	path   string
	data   []byte
	meta   localfs.FileMeta
	expect *localfs.Expect
	ns     *fileState
	hash   string
	err    error
	// Set by the worker after the write.
	abs     string
	info    os.FileInfo
	infoErr error
}

func newSmallWriter(ctx context.Context, folder *localfs.Folder) *smallWriter {
	w := &smallWriter{folder: folder, jobs: make(chan *writeJob), done: make(chan *writeJob, pullWriters*4)}
	for range pullWriters {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for j := range w.jobs {
				if err := ctx.Err(); err != nil {
					j.err = err
				} else {
					// The write returns the file's Lstat, for the puller's record.
					j.info, j.err = w.folder.WriteAtomicStat(j.path, bytes.NewReader(j.data), j.meta, j.expect)
					j.abs = filepath.Join(w.folder.Root(), filepath.FromSlash(j.path))
				}
				j.data = nil
				w.done <- j
			}
		}()
	}
	return w
}

// submit queues j, handing finished jobs to finish while it waits so the
// done channel never fills; it returns finish's first error.
func (w *smallWriter) submit(j *writeJob, finish func(*writeJob) error) error {
	var ferr error
	for {
		select {
		case w.jobs <- j:
			w.queued++
			return ferr
		case d := <-w.done:
			w.queued--
			if err := finish(d); err != nil && ferr == nil {
				ferr = err
			}
		}
	}
}

// reap finishes the jobs already done, without waiting.
func (w *smallWriter) reap(finish func(*writeJob) error) error {
	var ferr error
	for {
		select {
		case d := <-w.done:
			w.queued--
			if err := finish(d); err != nil && ferr == nil {
				ferr = err
			}
		default:
			return ferr
		}
	}
}

// close waits for every queued write and finishes it; the first error wins.
func (w *smallWriter) close(finish func(*writeJob) error) error {
	close(w.jobs)
	var ferr error
	for w.queued > 0 {
		d := <-w.done
		w.queued--
		if err := finish(d); err != nil && ferr == nil {
			ferr = err
		}
	}
	w.wg.Wait()
	return ferr
}
