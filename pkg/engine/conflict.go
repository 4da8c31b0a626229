package engine

import (
	"sort"

	"github.com/escale-sync/escale/pkg/protocol"
)

// A client keeps, per path, a register: every known version of the path
// that no other known version dominates (PROTOCOL.md §6). The winner is a
// function of that set alone, so clients that learned the same versions in
// any order pick the same winner: judging versions pairwise as they arrive
// would not converge with three or more concurrent versions.

// member is one version of a register.
type member = protocol.Rival

func origin(m *member) protocol.Vector {
	if m.Origin != nil {
		return m.Origin
	}
	return m.Version
}

// covers reports whether vector v descends from (or is) vector o.
func covers(v, o protocol.Vector) bool {
	c := protocol.Compare(o, v)
	return c == protocol.Lesser || c == protocol.Equal
}

// beats reports whether x wins over y, two concurrent members:
//  1. a version made knowing the other's content wins (a deletion of the
//     content a resolution carries beats the resolution);
//  2. a modification beats a deletion;
//  3. the later mtime wins;
//  4. the larger client name, then the larger hash.
func beats(x, y *member) bool {
	xy, yx := covers(x.Version, origin(y)), covers(y.Version, origin(x))
	if xy != yx {
		return xy
	}
	return wins(candidate{deleted: x.Kind == protocol.KindDelete, mtime: x.MTime, by: x.By, hash: x.Hash},
		candidate{deleted: y.Kind == protocol.KindDelete, mtime: y.MTime, by: y.By, hash: y.Hash})
}

// pick returns the index of the register's winner: the member that beats
// every other if there is one, else the result of a tournament in a
// canonical order, the same on every client.
func pick(ms []member) int {
	if len(ms) == 1 {
		return 0
	}
	for i := range ms {
		all := true
		for j := range ms {
			if i != j && !beats(&ms[i], &ms[j]) {
				all = false
				break
			}
		}
		if all {
			return i
		}
	}
	order := make([]int, len(ms))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return vectorKey(ms[order[a]].Version) < vectorKey(ms[order[b]].Version) })
	best := order[0]
	for _, i := range order[1:] {
		if beats(&ms[i], &ms[best]) {
			best = i
		}
	}
	return best
}

func vectorKey(v protocol.Vector) string {
	ids := v.Clients()
	sort.Strings(ids)
	b := make([]byte, 0, len(ids)*32)
	for _, id := range ids {
		b = append(b, id...)
		b = append(b, ':')
		b = appendUint(b, v[id])
		b = append(b, ',')
	}
	return string(b)
}

func appendUint(b []byte, n uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

// join adds the incoming versions to a register: it drops the members they
// dominate and the incoming ones already known or dominated. known reports
// whether nothing was new.
func join(reg []member, in []member) (out []member, known bool) {
	out = append([]member(nil), reg...)
	known = true
	for _, n := range in {
		dominated := false
		for i := range out {
			if c := protocol.Compare(n.Version, out[i].Version); c == protocol.Lesser || c == protocol.Equal {
				dominated = true
				break
			}
		}
		if dominated {
			continue
		}
		known = false
		kept := out[:0]
		for _, m := range out {
			if protocol.Compare(m.Version, n.Version) != protocol.Lesser {
				kept = append(kept, m)
			}
		}
		out = append(kept, n)
	}
	return out, known
}

// memberOf is the register member a change describes.
func memberOf(c *protocol.Change) member {
	return member{Version: c.Version, Origin: c.Origin, Kind: c.Kind, By: c.By, Hash: c.Hash, Size: c.Size, MTime: c.MTime, Mode: c.Mode}
}

// register lists the members of a synced state: its winner first.
func (s *fileState) register() []member {
	if s == nil {
		return nil
	}
	out := make([]member, 0, 1+len(s.Rivals))
	out = append(out, member{Version: s.Version, Origin: s.Origin, Kind: s.Kind, By: s.By, Hash: s.Hash, Size: s.Size, MTime: s.MTime, Mode: s.Mode})
	return append(out, s.Rivals...)
}
