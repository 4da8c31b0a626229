package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestValidateRefusesHostileManifests covers the rules of Manifest.Validate
// one by one, each with a manifest that breaks only that rule.
func TestValidateRefusesHostileManifests(t *testing.T) {
	good := func() *Manifest {
		m := &Manifest{V: Version, Client: "alpha", Seq: 7, Need: 1, Pullers: []string{cidB}, Changes: []Change{change("docs/a.txt")}, Objects: []string{objA}}
		return m
	}
	if err := good().Validate(7, "windows"); err != nil {
		t.Fatalf("the good manifest is refused: %v", err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(m *Manifest)
		seq   uint64
		goos  string
		wants string
	}{
		{"version", func(m *Manifest) { m.V = Version + 1 }, 7, "linux", fmt.Sprintf("version %d", Version+1)},
		{"seq", func(m *Manifest) {}, 8, "linux", "stored as 8"},
		{"need", func(m *Manifest) { m.Need = -1 }, 7, "linux", "puller count"},
		{"puller", func(m *Manifest) { m.Pullers = []string{"../x"} }, 7, "linux", "puller id"},
		{"object", func(m *Manifest) { m.Objects = []string{"../x"} }, 7, "linux", "object id"},
		{"dotdot", func(m *Manifest) { m.Changes[0].Path = "a/../../x" }, 7, "linux", `".."`},
		{"rename-from", func(m *Manifest) { m.Changes[0].From = "/etc/passwd" }, 7, "linux", "rename source"},
		{"control-in-name", func(m *Manifest) { m.Changes[0].Path = "docs/a\x01.txt" }, 7, "windows", "control"},
		{"duplicate", func(m *Manifest) { m.Changes = append(m.Changes, m.Changes[0]) }, 7, "linux", "twice"},
		{"no-version", func(m *Manifest) { m.Changes[0].Version = nil }, 7, "linux", "no version"},
		{"version-id", func(m *Manifest) { m.Changes[0].Version = Vector{"x": 1} }, 7, "linux", "bad client id"},
		{"kind", func(m *Manifest) { m.Changes[0].Kind = "fifo" }, 7, "linux", "unknown kind"},
		{"hash", func(m *Manifest) { m.Changes[0].Hash = "abc" }, 7, "linux", "bad hash"},
		{"negative-size", func(m *Manifest) { m.Changes[0].Size = -1 }, 7, "linux", "negative size"},
		{"ref-object", func(m *Manifest) { m.Changes[0].Data[0].Obj = "../../keys" }, 7, "linux", "bad data reference"},
		{"ref-negative", func(m *Manifest) { m.Changes[0].Data[0].Len = -1 }, 7, "linux", "bad data reference"},
		{"sizes", func(m *Manifest) { m.Changes[0].Size = 6 }, 7, "linux", "5 bytes for a 6-byte file"},
		{"symlink-target", func(m *Manifest) { m.Changes[0].Kind, m.Changes[0].Target = KindSymlink, "" }, 7, "linux", "without target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			tc.edit(m)
			err := m.Validate(tc.seq, tc.goos)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wants) {
				t.Fatalf("Validate: %v; want an ErrInvalid saying %q", err, tc.wants)
			}
		})
	}
}

// TestValidateRefusesOverflowingRefs: reference sizes and extents that wrap
// around int64. The engine sums, allocates and slices with them.
func TestValidateRefusesOverflowingRefs(t *testing.T) {
	wrapSizes := change("x.txt")
	wrapSizes.Data = []Ref{{Obj: objA, Size: 1 << 62, Z: true}, {Obj: objA, Size: 1 << 62}, {Obj: objA, Size: 1 << 62}, {Obj: objA, Size: 1<<62 + 5}}
	wrapExtent := change("y.txt")
	wrapExtent.Data[0].Off, wrapExtent.Data[0].Len = 1<<62, 1<<62
	var accepted []string
	for _, c := range []Change{wrapSizes, wrapExtent} {
		m := &Manifest{V: Version, Client: "alpha", Seq: 1, Changes: []Change{c}}
		if err := m.Validate(1, "linux"); err == nil {
			accepted = append(accepted, c.Path)
		}
	}
	if len(accepted) > 0 {
		t.Fatalf("bug (regression): Change.Validate accepts references whose sizes sum past int64 (x.txt: four sizes of ~2^62 add up to the declared 5) or whose Off+Len overflows (y.txt); the engine then panics (see engine TestHostileManifestData); accepted: %v", accepted)
	}
}

// TestParseHeadCanonical: heads are written with lowercase hex; another
// spelling of the same number is not a head (PROTOCOL.md §2), or the relay
// could keep two markers a client treats as one and never deletes.
func TestParseHeadCanonical(t *testing.T) {
	if _, ok := ParseHead(cidA + ".000000000000000A"); ok {
		t.Fatal("bug (regression): ParseHead accepts uppercase hex (strconv.ParseUint is case-insensitive); \"<cid>.000000000000000A\" parses as update 10 but is not the name Head.Name writes, so the pusher never deletes it; ParseSeqName has the same leniency")
	}
	if _, ok := ParseSeqName("000000000000000A"); ok {
		t.Fatal("ParseSeqName accepts uppercase hex")
	}
}

// TestParseMarkerRefuses covers each check of ParseMarker.
func TestParseMarkerRefuses(t *testing.T) {
	good := Marker{Format: MarkerFormat, Version: 1, Repository: strings.Repeat("0f", 16), Encryption: "age", Created: time.Unix(0, 0).UTC()}
	for _, tc := range []struct {
		name string
		edit func(m *Marker)
		want string
	}{
		{"ok", func(m *Marker) {}, ""},
		{"format", func(m *Marker) { m.Format = "other" }, "does not mark"},
		{"newer", func(m *Marker) { m.Version = Version + 1 }, "upgrade"},
		{"version-1", func(m *Marker) { m.Version = 1 }, ""},
		{"zero", func(m *Marker) { m.Version = 0 }, "bad version"},
		{"short-id", func(m *Marker) { m.Repository = "0f0f" }, "bad repository id"},
		{"not-hex", func(m *Marker) { m.Repository = strings.Repeat("zz", 16) }, "bad repository id"},
		{"encryption", func(m *Marker) { m.Encryption = "AGE" }, "unknown encryption"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := good
			tc.edit(&m)
			data, _ := json.Marshal(&m)
			_, err := ParseMarker(data)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseMarker: %v; want %q", err, tc.want)
			}
		})
	}
}
