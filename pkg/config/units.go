package config

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strings"
	"time"
)

// sizeUnits maps a lower-cased unit to its multiplier. Decimal units are
// powers of 1000 and binary ones powers of 1024, as on disks and in rclone's
// listings, so "2GB" means what a storage provider's quota page means.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

var sizeRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$`)

// sizeHint ends every size error: it says what a size looks like.
const sizeHint = "use a number with KB, MB, GB, KiB, MiB or GiB"

// ParseSize reads a byte count: a plain number of bytes ("1024") or a number
// with a unit, decimal (KB MB GB TB = powers of 1000) or binary (KiB MiB GiB
// TiB = powers of 1024), with or without a space, in any letter case
// ("2GB", "512 MiB", "1.5gb"). Negative, fractional-byte and overflowing
// values are refused. Single-letter units ("2G") are refused too because
// tools disagree on whether they mean 1000 or 1024.
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size; %s", s, sizeHint)
	}
	mult, ok := sizeUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("%q is not a size; %s", s, sizeHint)
	}
	r, ok := new(big.Rat).SetString(m[1])
	if !ok {
		return 0, fmt.Errorf("%q is not a size; %s", s, sizeHint)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("%q is not a whole number of bytes; %s", s, sizeHint)
	}
	if !r.Num().IsInt64() {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return r.Num().Int64(), nil
}

// FormatSize writes n in the largest unit that divides it exactly, so that
// ParseSize(FormatSize(n)) == n: 16777216 → "16MiB", 2000000000 → "2GB",
// 1500 → "1500".
func FormatSize(n int64) string {
	units := []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"TB", 1e12}, {"GiB", 1 << 30}, {"GB", 1e9}, {"MiB", 1 << 20}, {"MB", 1e6}, {"KiB", 1 << 10}, {"KB", 1e3}}
	for _, u := range units {
		if n != 0 && n%u.mult == 0 {
			return fmt.Sprintf("%d%s", n/u.mult, u.name)
		}
	}
	return fmt.Sprintf("%d", n)
}

var durationTokenRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h|d|w)`)

// durationHint ends every duration error: it says what a duration looks like.
const durationHint = `use a number with a unit: s, m, h, d (days) or w (weeks), e.g. "90s", "5m", "30d" or "1d12h"`

// ParseDuration reads a duration: Go's forms ("1h30m", "1.5h", "500ms")
// plus days and weeks ("30d", "2w", "1d12h"); a day is 24 hours (calendar
// days do not matter to timeouts). Spaces between parts are allowed ("1d 12h").
// A bare number other than "0" is refused: "5" could mean seconds or minutes.
// Negative durations are refused; no escale setting can use one.
func ParseDuration(s string) (time.Duration, error) {
	rest := strings.Join(strings.Fields(s), "")
	if rest == "0" {
		return 0, nil
	}
	if rest == "" {
		return 0, fmt.Errorf("empty duration; %s", durationHint)
	}
	var total time.Duration
	for rest != "" {
		m := durationTokenRE.FindStringSubmatch(rest)
		if m == nil {
			return 0, fmt.Errorf("%q is not a duration; %s", s, durationHint)
		}
		rest = rest[len(m[0]):]
		var d time.Duration
		var err error
		switch m[2] {
		case "d", "w":
			hours := int64(24)
			if m[2] == "w" {
				hours = 7 * 24
			}
			d, err = time.ParseDuration(m[1] + "h")
			if err == nil {
				if d > time.Duration(math.MaxInt64/hours) {
					return 0, fmt.Errorf("%q is too long", s)
				}
				d *= time.Duration(hours)
			}
		default:
			d, err = time.ParseDuration(m[0])
		}
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration (%v); %s", s, err, durationHint)
		}
		if total > math.MaxInt64-d {
			return 0, fmt.Errorf("%q is too long", s)
		}
		total += d
	}
	return total, nil
}

// FormatDuration writes d in ParseDuration's form with days, hours, minutes
// and seconds: 720h → "30d", 36h → "1d12h", 90s → "1m30s". Durations that
// are not whole seconds use Go's form ("1.5s").
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	if d < 0 || d%time.Second != 0 {
		return d.String()
	}
	var b strings.Builder
	for _, u := range []struct {
		name string
		unit time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if n := d / u.unit; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.unit
		}
	}
	return b.String()
}

// HumanSize writes n rounded for people: "512 B", "1.5 MiB".
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
