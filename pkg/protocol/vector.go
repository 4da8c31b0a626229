package protocol

import "sort"

// Vector is a version vector: for each client id, the Lamport counter of its
// latest change to a path (docs/PROTOCOL.md §6).
type Vector map[string]uint64

// Order is how two vectors relate.
type Order int

// The orders of two vectors.
const (
	Equal      Order = iota
	Greater          // a descends from b
	Lesser           // b descends from a
	Concurrent       // neither: a conflict
)

// Compare relates a to b.
func Compare(a, b Vector) Order {
	aGreater, bGreater := false, false
	for k, av := range a {
		bv := b[k]
		if av > bv {
			aGreater = true
		} else if av < bv {
			bGreater = true
		}
	}
	for k, bv := range b {
		if _, ok := a[k]; !ok && bv > 0 {
			bGreater = true
		}
	}
	switch {
	case aGreater && bGreater:
		return Concurrent
	case aGreater:
		return Greater
	case bGreater:
		return Lesser
	}
	return Equal
}

// Merge returns the element-wise maximum of a and b.
func Merge(a, b Vector) Vector {
	out := make(Vector, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if v > out[k] {
			out[k] = v
		}
	}
	return out
}

// Max is the largest counter in v.
func (v Vector) Max() uint64 {
	var m uint64
	for _, c := range v {
		m = max(m, c)
	}
	return m
}

// Bump returns a copy of v with cid's counter set to counter.
func (v Vector) Bump(cid string, counter uint64) Vector {
	out := make(Vector, len(v)+1)
	for k, c := range v {
		out[k] = c
	}
	out[cid] = counter
	return out
}

// Clients lists the ids in v, sorted.
func (v Vector) Clients() []string {
	ids := make([]string, 0, len(v))
	for k := range v {
		ids = append(ids, k)
	}
	sort.Strings(ids)
	return ids
}
