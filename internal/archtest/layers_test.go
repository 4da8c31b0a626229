// Package archtest checks the code's layering: which packages may import
// which. It holds only tests.
package archtest

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/escale-sync/escale/"

// imports maps each package directory (relative to the module root) to the
// imports of its non-test files.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir, _ := filepath.Rel(root, filepath.Dir(p))
		for _, im := range f.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			out[filepath.ToSlash(dir)] = append(out[filepath.ToSlash(dir)], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Only the storage adapter (and its test helpers below it) talks to rclone.
func TestOnlyStorageImportsRclone(t *testing.T) {
	for dir, ims := range imports(t) {
		if dir == "pkg/storage" || strings.HasPrefix(dir, "pkg/storage/") {
			continue
		}
		for _, im := range ims {
			if strings.HasPrefix(im, "github.com/rclone/rclone") {
				t.Errorf("%s imports %s: only pkg/storage may import rclone", dir, im)
			}
		}
	}
}

// Layers are one-way: cli → daemon → engine → protocol → storage, envelope.
func TestLayersAreOneWay(t *testing.T) {
	rank := map[string]int{
		"cmd/escale": 0, "pkg/cli": 1, "pkg/daemon": 2, "pkg/relaycheck": 2,
		"pkg/engine": 3, "pkg/watch": 3, "pkg/alert": 3, "pkg/metrics": 3,
		"pkg/protocol": 4, "pkg/scan": 4, "pkg/importconf": 4,
		"pkg/storage": 5, "pkg/envelope": 5, "pkg/localfs": 5, "pkg/cdc": 5, "pkg/state": 5, "pkg/filter": 5,
		"pkg/config": 5, "pkg/logging": 5, "pkg/version": 6,
	}
	for dir, ims := range imports(t) {
		r, ok := rank[dir]
		if !ok {
			continue
		}
		for _, im := range ims {
			dep, ok := strings.CutPrefix(im, module)
			if !ok {
				continue
			}
			if dr, ok := rank[dep]; ok && dr <= r && dep != dir {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must point down", dir, r, dep, dr)
			}
		}
	}
}
