package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"
)

const testLogN = 10 // keeps scrypt fast in tests

func rotatedKeyrings(t *testing.T) []*Keyring {
	t.Helper()
	kr1 := testKeyring(t, 1)
	kr2, err := NewKeyring(kr1.RepoID, 2)
	if err != nil {
		t.Fatal(err)
	}
	return []*Keyring{kr2, kr1} // any order in, oldest first out
}

func sameKeyrings(t *testing.T, got, want []*Keyring) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d keyrings, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.RepoID != w.RepoID || g.Epoch != w.Epoch || g.MACKey != w.MACKey || g.NameKey != w.NameKey ||
			g.Identity.String() != w.Identity.String() || !g.Created.Equal(w.Created) {
			t.Fatalf("keyring %d differs after unwrap", i)
		}
	}
}

func TestSlotPassphrase(t *testing.T) {
	krs := rotatedKeyrings(t)
	slot, err := WrapPassphrase(krs, "correct horse", WithScryptWorkFactor(testLogN))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(slot, []byte(krs[0].Identity.String())) {
		t.Fatal("slot holds the identity in clear")
	}
	id, err := PassphraseIdentity("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unwrap(slot, id)
	if err != nil {
		t.Fatal(err)
	}
	sameKeyrings(t, got, []*Keyring{krs[1], krs[0]})

	// The unwrapped keyrings open what the originals sealed.
	obj, err := NewSealer(krs[0]).SealBytes(KindKeyCheck, "keys/check", []byte("ok"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewOpener(got).OpenBytes(obj, KindKeyCheck, "keys/check", NoLimit); err != nil {
		t.Fatal(err)
	}
	if krs[0].ObjectName([]byte("x")) != got[1].ObjectName([]byte("x")) {
		t.Fatal("unwrapped NameKey derives other names")
	}

	wrong, _ := PassphraseIdentity("wrong horse")
	_, err = Unwrap(slot, wrong)
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "wrong passphrase or key for this repository") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	// An identity that does not fit a passphrase slot is a wrong key too.
	other, _ := age.GenerateX25519Identity()
	if _, err := Unwrap(slot, other); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("X25519 identity on a passphrase slot: %v", err)
	}
}

func TestSlotIdentity(t *testing.T) {
	krs := rotatedKeyrings(t)
	client, _ := age.GenerateX25519Identity()
	slot, err := WrapIdentity(krs, client.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unwrap(slot, client)
	if err != nil {
		t.Fatal(err)
	}
	sameKeyrings(t, got, []*Keyring{krs[1], krs[0]})

	stranger, _ := age.GenerateX25519Identity()
	pass, _ := PassphraseIdentity("anything")
	if _, err := Unwrap(slot, stranger, pass); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong identity: %v", err)
	}
	if _, err := Unwrap(slot); err == nil {
		t.Fatal("Unwrap without identities succeeded")
	}
}

func TestSlotCorrupt(t *testing.T) {
	krs := rotatedKeyrings(t)
	client, _ := age.GenerateX25519Identity()
	slot, err := WrapIdentity(krs, client.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(slot); i += 1 + len(slot)/200 {
		bad := bytes.Clone(slot)
		bad[i] ^= 0x04
		if _, err := Unwrap(bad, client); !errors.Is(err, ErrCorruptSlot) && !errors.Is(err, ErrWrongKey) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	for _, bad := range [][]byte{nil, []byte("hello"), slot[:len(slot)-1], append(bytes.Clone(slot), 0)} {
		if _, err := Unwrap(bad, client); !errors.Is(err, ErrCorruptSlot) {
			t.Fatalf("%d-byte slot: %v", len(bad), err)
		}
	}
}

// sealSlot encrypts arbitrary slot contents to id.
func sealSlot(t *testing.T, id *age.X25519Identity, v any) []byte {
	t.Helper()
	plain, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, _ := age.Encrypt(&buf, id.Recipient())
	w.Write(plain)
	w.Close()
	return buf.Bytes()
}

func TestSlotContents(t *testing.T) {
	client, _ := age.GenerateX25519Identity()
	kr := testKeyring(t, 1)
	good := keyringJSON{RepoID: kr.RepoID[:], Epoch: 1, Identity: kr.Identity.String(), MACKey: kr.MACKey[:], NameKey: kr.NameKey[:]}
	if _, err := Unwrap(sealSlot(t, client, slotJSON{Format: slotFormat, Version: 1, Keyrings: []keyringJSON{good}}), client); err != nil {
		t.Fatalf("hand-made slot: %v", err)
	}
	newer := slotJSON{Format: slotFormat, Version: 2, Keyrings: []keyringJSON{good}}
	_, err := Unwrap(sealSlot(t, client, newer), client)
	if !errors.Is(err, ErrUnknownVersion) || !strings.Contains(err.Error(), "upgrade escale") {
		t.Fatalf("newer slot: %v", err)
	}
	short := good
	short.MACKey = short.MACKey[:16]
	other := good
	other.RepoID = make([]byte, 16)
	other.Epoch = 2
	for what, s := range map[string]any{
		"not json":      "just a string",
		"other format":  slotJSON{Format: "something", Version: 1, Keyrings: []keyringJSON{good}},
		"no keyrings":   slotJSON{Format: slotFormat, Version: 1},
		"short key":     slotJSON{Format: slotFormat, Version: 1, Keyrings: []keyringJSON{short}},
		"bad identity":  slotJSON{Format: slotFormat, Version: 1, Keyrings: []keyringJSON{{RepoID: good.RepoID, MACKey: good.MACKey, NameKey: good.NameKey, Identity: "AGE-SECRET-KEY-1XYZ"}}},
		"mixed repos":   slotJSON{Format: slotFormat, Version: 1, Keyrings: []keyringJSON{good, other}},
		"epoch repeats": slotJSON{Format: slotFormat, Version: 1, Keyrings: []keyringJSON{good, good}},
	} {
		if _, err := Unwrap(sealSlot(t, client, s), client); !errors.Is(err, ErrCorruptSlot) {
			t.Errorf("%s: %v", what, err)
		}
	}
}

// TestSlotWorkFactorBound: a slot demanding more scrypt work than
// MaxScryptWorkFactor is refused before any scrypt runs (2^30 would need
// 128 GiB: the test would die, not pass, if it were attempted).
func TestSlotWorkFactorBound(t *testing.T) {
	krs := rotatedKeyrings(t)
	slot, err := WrapPassphrase(krs, "pw", WithScryptWorkFactor(testLogN))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(-> scrypt \S+) 10\n`)
	if !re.Match(slot) {
		t.Fatalf("no scrypt stanza in slot header %q", slot[:100])
	}
	hostile := re.ReplaceAll(slot, []byte("$1 30\n"))
	id, _ := age.NewScryptIdentity("pw") // its own default bound is 22; Unwrap lowers it
	_, err = Unwrap(hostile, id)
	if !errors.Is(err, ErrCorruptSlot) || !strings.Contains(err.Error(), "work factor") {
		t.Fatalf("hostile work factor: %v", err)
	}
	for _, bad := range []int{0, MaxScryptWorkFactor + 1} {
		if _, err := WrapPassphrase(krs, "pw", WithScryptWorkFactor(bad)); err == nil {
			t.Errorf("work factor %d accepted", bad)
		}
	}
	if _, err := WrapPassphrase(krs, "", WithScryptWorkFactor(testLogN)); err == nil {
		t.Error("empty passphrase accepted")
	}
	if _, err := WrapPassphrase([]*Keyring{krs[0], krs[0]}, "pw", WithScryptWorkFactor(testLogN)); err == nil {
		t.Error("duplicate epochs accepted")
	}
}

// TestSlotDefaultWorkFactor runs one real-cost scrypt: the default must be
// within what Unwrap accepts.
func TestSlotDefaultWorkFactor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs scrypt at full cost")
	}
	krs := rotatedKeyrings(t)
	slot, err := WrapPassphrase(krs, "pw")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := PassphraseIdentity("pw")
	if _, err := Unwrap(slot, id); err != nil {
		t.Fatal(err)
	}
}
