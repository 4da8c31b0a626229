package envelope

import (
	"bytes"
	"errors"
	"testing"

	"filippo.io/age"
)

func TestNextKeyringKeepsNamesChangesSecrets(t *testing.T) {
	kr1 := testKeyring(t, 1)
	kr2, err := NextKeyring(kr1)
	if err != nil {
		t.Fatal(err)
	}
	if kr2.Epoch != 2 || kr2.RepoID != kr1.RepoID {
		t.Fatalf("epoch %d repo %x, want 2 and the same repository", kr2.Epoch, kr2.RepoID)
	}
	if kr2.NameKey != kr1.NameKey || kr2.ObjectName([]byte("client"), []byte("a")) != kr1.ObjectName([]byte("client"), []byte("a")) {
		t.Fatal("names changed across epochs: a rotation would re-send everything")
	}
	if kr2.MACKey == kr1.MACKey || kr2.Identity.String() == kr1.Identity.String() {
		t.Fatal("the new epoch reuses a secret of the old one")
	}

	// What epoch 2 seals, a holder of epoch 1 alone can neither open nor
	// forge for a reader of epoch 2.
	obj, err := NewSealer(kr2).SealBytes(KindManifest, "clients/x/log/1", []byte("after rotation"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewOpener([]*Keyring{kr1}).OpenBytes(obj, KindManifest, "clients/x/log/1", NoLimit)
	wantVerify(t, err, ReasonWrongKey)
	both := NewOpener([]*Keyring{kr1, kr2})
	if got, err := both.OpenBytes(obj, KindManifest, "clients/x/log/1", NoLimit); err != nil || string(got) != "after rotation" {
		t.Fatalf("reader of both epochs: %q, %v", got, err)
	}
	forged := *kr2
	forged.MACKey = kr1.MACKey // an old member knows only epoch 1's MAC key
	obj, _ = NewSealer(&forged).SealBytes(KindManifest, "clients/x/log/1", []byte("forged"))
	_, err = both.OpenBytes(obj, KindManifest, "clients/x/log/1", NoLimit)
	wantVerify(t, err, ReasonMAC)

	if _, err := NextKeyring(nil); err == nil {
		t.Fatal("NextKeyring(nil) succeeded")
	}
}

func TestSlotKeyRoundTrip(t *testing.T) {
	key, _ := age.GenerateX25519Identity()
	repo := testKeyring(t, 1).RepoID
	door, err := WrapSlotKey(key, repo, "open sesame", WithScryptWorkFactor(testLogN))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(door, []byte(key.String())) {
		t.Fatal("slot key stored in clear")
	}
	pass, _ := PassphraseIdentity("open sesame")
	sc, err := OpenSlot(door, pass)
	if err != nil || sc.Keyrings != nil || sc.Key == nil || sc.Key.String() != key.String() || sc.RepoID != repo {
		t.Fatalf("OpenSlot: %+v, %v", sc, err)
	}
	wrong, _ := PassphraseIdentity("open barley")
	if _, err := OpenSlot(door, wrong); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong passphrase: %v, want ErrWrongKey", err)
	}

	// A keyring slot opens through OpenSlot too.
	want := rotatedKeyrings(t)
	ring, err := WrapIdentity(want, key.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	sc, err = OpenSlot(ring, key)
	if err != nil || sc.Key != nil || sc.RepoID != want[0].RepoID {
		t.Fatalf("OpenSlot of a keyring slot: %+v, %v", sc, err)
	}
	sameKeyrings(t, sc.Keyrings, []*Keyring{want[1], want[0]})

	if _, err := WrapSlotKey(key, repo, "x", WithScryptWorkFactor(MaxScryptWorkFactor+1)); err == nil {
		t.Fatal("accepted a work factor over the maximum")
	}
	if _, err := WrapSlotKey(nil, repo, "x"); err == nil {
		t.Fatal("wrapped a nil key")
	}
}

func TestMarshalKeyringsRoundTrip(t *testing.T) {
	want := rotatedKeyrings(t)
	plain, err := MarshalKeyrings(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalKeyrings(plain)
	if err != nil {
		t.Fatal(err)
	}
	sameKeyrings(t, got, []*Keyring{want[1], want[0]})
	if _, err := UnmarshalKeyrings([]byte(`{"format":"escale-keyring","version":1,"keyrings":[]}`)); !errors.Is(err, ErrCorruptSlot) {
		t.Fatalf("empty keyrings: %v", err)
	}
	if _, err := MarshalKeyrings(nil); err == nil {
		t.Fatal("marshalled no keyrings")
	}
}

func TestEpochReadsOnlyTheHeader(t *testing.T) {
	krs := rotatedKeyrings(t) // epochs 2 and 1
	o := NewOpener(krs)
	for _, kr := range krs {
		obj, err := NewSealer(kr).SealBytes(KindPack, "clients/x/data/y", randomBytes(3, 200<<10))
		if err != nil {
			t.Fatal(err)
		}
		// Only the first 4 KiB: the payload is never needed.
		ep, err := o.Epoch(bytes.NewReader(obj[:maxAgeHeader]), "clients/x/data/y")
		if err != nil || ep != kr.Epoch {
			t.Fatalf("epoch %d, %v; want %d", ep, err, kr.Epoch)
		}
		_, err = NewOpener([]*Keyring{testKeyring(t, 1)}).Epoch(bytes.NewReader(obj), "clients/x/data/y")
		wantVerify(t, err, ReasonWrongKey)
	}
	plain, _ := NewPlainSealer(krs[0].RepoID).SealBytes(KindPack, "p", []byte("x"))
	if ep, err := o.Epoch(bytes.NewReader(plain), "p"); err != nil || ep != 0 {
		t.Fatalf("plain object: epoch %d, %v", ep, err)
	}
	_, err := o.Epoch(bytes.NewReader([]byte("junk")), "j")
	wantVerify(t, err, ReasonNotObject)
}

// FuzzOpenSlot: any bytes give keyrings, a slot key, or a classified error.
func FuzzOpenSlot(f *testing.F) {
	ids := fuzzIdentities(f)
	kr := fixedKeyring(f)
	if ring, err := WrapIdentity([]*Keyring{kr}, kr.Recipient()); err == nil {
		f.Add(ring)
	}
	key, _ := age.GenerateX25519Identity()
	if door, err := WrapSlotKey(key, kr.RepoID, fuzzPassphrase, WithScryptWorkFactor(fuzzLogN)); err == nil {
		f.Add(door)
	}
	f.Add([]byte("age-encryption.org/v1\n-> X25519 x\n"))
	f.Fuzz(func(t *testing.T, slot []byte) {
		sc, err := OpenSlot(slot, ids...)
		if err != nil {
			if !errors.Is(err, ErrWrongKey) && !errors.Is(err, ErrCorruptSlot) && !errors.Is(err, ErrUnknownVersion) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if (sc.Keyrings == nil) == (sc.Key == nil) {
			t.Fatal("OpenSlot gave both or neither of keyrings and a slot key")
		}
		if sc.Keyrings != nil {
			if err := checkKeyrings(sc.Keyrings); err != nil || sc.RepoID != sc.Keyrings[0].RepoID {
				t.Fatalf("invalid keyrings: %v", err)
			}
		}
	})
}

// FuzzUnmarshalKeyrings: the cache decoder never accepts invalid keyrings.
func FuzzUnmarshalKeyrings(f *testing.F) {
	if plain, err := MarshalKeyrings([]*Keyring{fixedKeyring(f)}); err == nil {
		f.Add(plain)
	}
	f.Add([]byte(`{"format":"escale-keyring","version":2}`))
	f.Fuzz(func(t *testing.T, plain []byte) {
		krs, err := UnmarshalKeyrings(plain)
		if err != nil {
			if !errors.Is(err, ErrCorruptSlot) && !errors.Is(err, ErrUnknownVersion) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if err := checkKeyrings(krs); err != nil {
			t.Fatalf("invalid keyrings: %v", err)
		}
	})
}

// FuzzEpoch: reading an epoch from any bytes never panics and reports
// failures as VerifyErrors.
func FuzzEpoch(f *testing.F) {
	kr := fixedKeyring(f)
	o := NewOpener([]*Keyring{kr})
	if obj, err := NewSealer(kr).SealBytes(KindIndex, "n", []byte("x")); err == nil {
		f.Add(obj)
	}
	f.Add([]byte("ESCALE"))
	f.Fuzz(func(t *testing.T, obj []byte) {
		ep, err := o.Epoch(bytes.NewReader(obj), "n")
		var ve *VerifyError
		switch {
		case err == nil && ep != 0 && ep != kr.Epoch:
			t.Fatalf("epoch %d from a reader that knows only %d", ep, kr.Epoch)
		case err != nil && !errors.As(err, &ve):
			t.Fatalf("unclassified error: %v", err)
		}
	})
}
