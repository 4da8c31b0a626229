package envelope

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"
)

// Regenerate the committed seed corpus with
//
//	go test ./pkg/envelope -run TestFuzzCorpus -update-corpus
//
// Seeds are sealed with fixedKeyring, so they stay openable; good_* seeds
// must open and fail_* seeds must be rejected, which TestFuzzCorpus checks on
// every run.
var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz seed corpus")

const (
	fuzzName       = "clients/fuzz/log/00000001"
	fuzzKind       = KindManifest
	fuzzMax        = 1 << 20
	fuzzPassphrase = "fuzz passphrase"
	fuzzLogN       = 2 // FuzzUnwrap accepts at most this scrypt cost
)

func fuzzOpeners(t testing.TB) []*Opener {
	kr := fixedKeyring(t)
	return []*Opener{NewOpener([]*Keyring{kr}), NewPlainOpener(kr.RepoID)}
}

func FuzzOpen(f *testing.F) {
	openers := fuzzOpeners(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, o := range openers {
			out, err := o.OpenBytes(data, fuzzKind, fuzzName, fuzzMax)
			if err == nil && len(out) > fuzzMax {
				t.Fatalf("opened %d bytes past the limit", len(out))
			}
			var ve *VerifyError
			if err != nil && !errors.As(err, &ve) {
				t.Fatalf("in-memory object gave a non-verification error: %v", err)
			}
		}
	})
}

func fuzzIdentities(t testing.TB) []age.Identity {
	pass, err := age.NewScryptIdentity(fuzzPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	return []age.Identity{fixedKeyring(t).Identity, pass}
}

func FuzzUnwrap(f *testing.F) {
	ids := fuzzIdentities(f)
	f.Fuzz(func(t *testing.T, slot []byte) {
		krs, err := unwrap(slot, fuzzLogN, ids...)
		if err != nil {
			if !errors.Is(err, ErrWrongKey) && !errors.Is(err, ErrCorruptSlot) && !errors.Is(err, ErrUnknownVersion) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if err := checkKeyrings(krs); err != nil {
			t.Fatalf("unwrapped invalid keyrings: %v", err)
		}
	})
}

// corpusSeeds builds the seed corpus: valid objects of each shape and a few
// known-bad ones.
func corpusSeeds(t *testing.T) (open, slots map[string][]byte) {
	kr := fixedKeyring(t)
	s, ps := NewSealer(kr), NewPlainSealer(kr.RepoID)
	seal := func(s *Sealer, kind Kind, name string, p []byte) []byte {
		obj, err := s.SealBytes(kind, name, p)
		if err != nil {
			t.Fatal(err)
		}
		return obj
	}
	manifest := textBytes(11, 3000)
	open = map[string][]byte{
		"good_empty":            seal(s, fuzzKind, fuzzName, nil),
		"good_manifest_zstd":    seal(s, fuzzKind, fuzzName, manifest),
		"good_raw":              seal(s, fuzzKind, fuzzName, randomBytes(11, 700)),
		"good_plain_empty":      seal(ps, fuzzKind, fuzzName, nil),
		"good_plain_zstd":       seal(ps, fuzzKind, fuzzName, manifest),
		"good_plain_raw":        seal(ps, fuzzKind, fuzzName, randomBytes(13, 300)),
		"fail_swapped_name":     seal(s, fuzzKind, "clients/fuzz/log/00000002", manifest),
		"fail_swapped_kind":     seal(s, KindPack, fuzzName, manifest),
		"fail_plain_other_kind": seal(ps, KindIndex, fuzzName, manifest),
		"fail_bomb":             seal(s, fuzzKind, fuzzName, make([]byte, fuzzMax+1)),
		"fail_forged_mac":       nil,
		"fail_truncated":        nil,
		"fail_plain_trailing":   nil,
	}
	forger := *kr
	forger.MACKey[5] ^= 1
	open["fail_forged_mac"] = seal(NewSealer(&forger), fuzzKind, fuzzName, manifest)
	open["fail_truncated"] = open["good_raw"][:len(open["good_raw"])-7]
	open["fail_plain_trailing"] = append(bytes.Clone(open["good_plain_raw"]), 0)

	krs := []*Keyring{kr}
	passSlot, err := WrapPassphrase(krs, fuzzPassphrase, WithScryptWorkFactor(fuzzLogN))
	if err != nil {
		t.Fatal(err)
	}
	idSlot, err := WrapIdentity(krs, kr.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	other, _ := age.GenerateX25519Identity()
	strangerSlot, err := WrapIdentity(krs, other.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	slots = map[string][]byte{
		"good_passphrase":  passSlot,
		"good_identity":    idSlot,
		"fail_wrong_key":   strangerSlot,
		"fail_truncated":   idSlot[:len(idSlot)-3],
		"fail_work_factor": bytes.Replace(passSlot, []byte(fmt.Sprintf(" %d\n", fuzzLogN)), []byte(" 3\n"), 1),
	}
	return open, slots
}

func TestFuzzCorpus(t *testing.T) {
	dirs := map[string]string{"FuzzOpen": "testdata/fuzz/FuzzOpen", "FuzzUnwrap": "testdata/fuzz/FuzzUnwrap"}
	if *updateCorpus {
		open, slots := corpusSeeds(t)
		for target, seeds := range map[string]map[string][]byte{"FuzzOpen": open, "FuzzUnwrap": slots} {
			if err := os.MkdirAll(dirs[target], 0o755); err != nil {
				t.Fatal(err)
			}
			for name, data := range seeds {
				file := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
				if err := os.WriteFile(filepath.Join(dirs[target], name), []byte(file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	openers, ids := fuzzOpeners(t), fuzzIdentities(t)
	for target, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*"))
		if err != nil || len(files) < 5 {
			t.Fatalf("%s: %d seed files (%v); regenerate with -update-corpus", dir, len(files), err)
		}
		for _, file := range files {
			data := readSeed(t, file)
			var ok bool
			if target == "FuzzOpen" {
				for _, o := range openers {
					if _, err := o.OpenBytes(data, fuzzKind, fuzzName, fuzzMax); err == nil {
						ok = true
					}
				}
			} else {
				_, err := unwrap(data, fuzzLogN, ids...)
				ok = err == nil
			}
			if good := strings.HasPrefix(filepath.Base(file), "good_"); ok != good {
				t.Errorf("%s: opened=%v", file, ok)
			}
		}
	}
}

func readSeed(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := strings.CutPrefix(string(b), "go test fuzz v1\n[]byte(")
	s, ok2 := strings.CutSuffix(s, ")\n")
	if !ok || !ok2 {
		t.Fatalf("%s: not a []byte seed", file)
	}
	q, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return []byte(q)
}
