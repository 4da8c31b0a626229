package config

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Typed readers. Each reports a problem and returns false on a bad value.

func (d *decoder) str(key string, v any, want string) (string, bool) {
	s, ok := v.(string)
	if !ok {
		d.add(key, "expected %s, in quotes; got %s", want, describe(v))
	}
	return s, ok
}

// path reads a path and makes it absolute. For optional keys an empty
// string means "not set", so printed defaults read back unchanged.
func (d *decoder) path(key string, v any, want string, optional bool) (string, bool) {
	s, ok := d.str(key, v, want)
	if !ok {
		return "", false
	}
	if strings.TrimSpace(s) == "" {
		if optional {
			return "", true
		}
		d.add(key, "is empty; expected %s", want)
		return "", false
	}
	base := d.dir
	if _, fromEnv := d.envKeys[key]; fromEnv {
		base = "" // relative to where escale was started, as any shell path
	}
	p, err := expandPath(s, d.opts.Home, base)
	if err != nil {
		d.add(key, "%v", err)
		return "", false
	}
	return p, true
}

func (d *decoder) int(key string, v any, want string) (int, bool) {
	switch n := v.(type) {
	case int64:
		if n > math.MaxInt32 || n < math.MinInt32 {
			d.add(key, "%d is too large; expected %s", n, want)
			return 0, false
		}
		return int(n), true
	case string:
		d.add(key, "expected %s, without quotes; got %s", want, describe(v))
	default:
		d.add(key, "expected %s; got %s", want, describe(v))
	}
	return 0, false
}

func (d *decoder) size(key string, v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		if n < 0 {
			d.add(key, "%d is negative; %s", n, sizeHint)
			return 0, false
		}
		return n, true
	case float64:
		if n < 0 || n != math.Trunc(n) || n > math.MaxInt64 {
			d.add(key, "%v is not a whole number of bytes; %s", n, sizeHint)
			return 0, false
		}
		return int64(n), true
	case string:
		s, err := ParseSize(n)
		if err != nil {
			d.add(key, "%v", err)
			return 0, false
		}
		return s, true
	}
	d.add(key, "expected a size such as \"2GB\"; got %s; %s", describe(v), sizeHint)
	return 0, false
}

func (d *decoder) duration(key string, v any) (time.Duration, bool) {
	s, ok := v.(string)
	if !ok {
		d.add(key, "expected a duration in quotes, got %s; %s", describe(v), durationHint)
		return 0, false
	}
	t, err := ParseDuration(s)
	if err != nil {
		d.add(key, "%v", err)
		return 0, false
	}
	return t, true
}

func (d *decoder) list(key string, v any) ([]string, bool) {
	switch l := v.(type) {
	case string:
		return []string{l}, true
	case []any:
		out := make([]string, 0, len(l))
		for i, e := range l {
			s, ok := e.(string)
			if !ok {
				d.add(key, "item %d: expected a string in quotes, got %s", i+1, describe(e))
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	d.add(key, `expected a list of strings such as ["*.tmp", "/^~/"], got %s`, describe(v))
	return nil, false
}

// describe names a TOML value for messages.
func describe(v any) string {
	switch t := v.(type) {
	case string:
		return fmt.Sprintf("the text %q", t)
	case int64:
		return fmt.Sprintf("the number %d", t)
	case float64:
		return fmt.Sprintf("the number %v", t)
	case bool:
		return fmt.Sprintf("the boolean %v", t)
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	case nil:
		return "nothing"
	default:
		return fmt.Sprintf("a date or time (%v)", t)
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }
