//go:build !linux && !darwin

package localfs

import (
	"errors"
	"io"
	"io/fs"
)

// dirCache is not used here: WriteAtomic goes through the os.Root (writeAtomicRoot).
type dirCache struct{}

func newDirCache(string) (*dirCache, error) { return nil, nil }

func (*dirCache) forget(string) {}
func (*dirCache) releaseAll()   {}
func (*dirCache) close()        {}

func (f *Folder) writeAtomicAt(string, io.Reader, FileMeta, *Expect) (fs.FileInfo, error) {
	return nil, errors.ErrUnsupported
}
