package engine

import (
	"fmt"
	"sort"
	"strings"

	"github.com/escale-sync/escale/pkg/state"
)

// bucketAccess holds per-file access modifiers: path → "r-", "w-" or "r-w-".
// They are local to this client and never travel.
const bucketAccess = "access"

// Access is what this client may do with one file.
type Access struct {
	Read  bool // pushed when it changes here (r+), or never (r-)
	Write bool // replaced or deleted by pulls (w+), or never (w-)
}

func (a Access) String() string {
	s := "r+"
	if !a.Read {
		s = "r-"
	}
	if a.Write {
		return s + "w+"
	}
	return s + "w-"
}

// ParseModifiers applies modifiers such as "r-", "w+", "r-w-" (the original
// escale's notation) to a.
func ParseModifiers(a Access, mods string) (Access, error) {
	rest := strings.ReplaceAll(mods, " ", "")
	for len(rest) > 0 {
		if len(rest) < 2 || (rest[0] != 'r' && rest[0] != 'w') || (rest[1] != '+' && rest[1] != '-') {
			return a, fmt.Errorf("access modifiers %q: use r+, r-, w+ or w-, e.g. \"r-\" (never push) or \"w-\" (never overwrite)", mods)
		}
		on := rest[1] == '+'
		if rest[0] == 'r' {
			a.Read = on
		} else {
			a.Write = on
		}
		rest = rest[2:]
	}
	return a, nil
}

// GetAccess reads the modifiers of path from a repository's state.
func GetAccess(db *state.DB, path string) (Access, error) {
	a := Access{Read: true, Write: true}
	err := db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketAccess)
		if err != nil {
			return err
		}
		if v := b.Get([]byte(path)); v != nil {
			a, err = ParseModifiers(a, string(v))
		}
		return err
	})
	return a, err
}

// SetAccess stores the modifiers of path; the default (r+w+) is not stored.
func SetAccess(db *state.DB, path string, a Access) error {
	return db.Update(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketAccess)
		if err != nil {
			return err
		}
		if a.Read && a.Write {
			return b.Delete([]byte(path))
		}
		return b.Put([]byte(path), []byte(a.String()))
	})
}

// ListAccess returns every path with modifiers, sorted.
func ListAccess(db *state.DB) (map[string]Access, []string, error) {
	out := map[string]Access{}
	var paths []string
	err := db.View(func(tx *state.Tx) error {
		b, err := tx.Bucket(bucketAccess)
		if err != nil {
			return err
		}
		return b.ForEach(nil, func(k, v []byte) error {
			a, err := ParseModifiers(Access{Read: true, Write: true}, string(v))
			if err != nil {
				return err
			}
			out[string(k)] = a
			paths = append(paths, string(k))
			return nil
		})
	})
	sort.Strings(paths)
	return out, paths, err
}

// DB is the engine's local state, for commands that edit it (access).
func (e *Engine) DB() *state.DB { return e.db }
