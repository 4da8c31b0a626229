//go:build !linux

package scan

import "os"

// dirLister lists a directory and lstats its entries through os.Root.
type dirLister struct {
	root *os.Root
	f    *os.File
}

func openDir(root *os.Root) (*dirLister, error) {
	f, err := root.Open(".")
	if err != nil {
		return nil, err
	}
	return &dirLister{root: root, f: f}, nil
}

func (d *dirLister) names() ([]string, error) { return d.f.Readdirnames(-1) }

func (d *dirLister) close() { d.f.Close() }

func (d *dirLister) lstat(name string) (fileStat, error) {
	fi, err := d.root.Lstat(name)
	if err != nil {
		return fileStat{}, err
	}
	return statOf(fi), nil
}
