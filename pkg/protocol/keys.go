package protocol

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/storage"
)

// Key slots (PROTOCOL.md §4.1). A slot is up to three files sharing a stem
// keys/<id>-<16 hex digits of the repository id>:
//
//   - <stem>.age, the way in: for a passphrase slot the slot key (an age
//     X25519 identity) scrypt-wrapped with the passphrase; for an identity
//     slot the keyrings, encrypted to the user's age recipient.
//   - <stem>.ring (passphrase slots): the keyrings, encrypted to the slot
//     key's recipient. Rotation rewrites it without knowing the passphrase.
//   - <stem>.info: the sealed SlotInfo (kind, label, recipient, creation).
//
// A slot exists once its .age exists: writers put it last and delete it first.

// Slot kinds.
const (
	SlotPassphrase = "passphrase"
	SlotIdentity   = "identity"
)

const (
	maxSlotInfo      = 64 << 10
	epochMarkerStem  = "epoch."
	slotExtAge       = ".age"
	slotExtRing      = ".ring"
	slotExtInfo      = ".info"
	maxObjectHeaders = 4 << 10
)

// ErrKeyRemoved means this client's key slot is gone from the relay and no
// other slot opens with its passphrase or key.
var ErrKeyRemoved = errors.New("this client's key was removed from the repository")

// SlotInfo describes a key slot. It holds no secret.
type SlotInfo struct {
	V         int       `json:"v"`
	Kind      string    `json:"kind"` // SlotPassphrase or SlotIdentity
	Label     string    `json:"label"`
	Recipient string    `json:"recipient"` // age recipient the keyrings are encrypted to
	Created   time.Time `json:"created"`

	ID     string `json:"-"` // the slot's name in keys/, without repository suffix and extension
	Own    bool   `json:"-"` // this client opened the repository with it
	Legacy bool   `json:"-"` // written before slot infos: cannot be rewritten, only removed
	// Damaged: the info does not open with a live epoch; only removal helps.
	Damaged bool `json:"-"`
	// Epoch seals the slot's info. Every slot rewrite seals with the newest
	// epoch, so an older one means a slot added before the last rotation
	// and never rewritten since, e.g. planted by a former member who kept
	// an old epoch's keys and write access to the storage.
	Epoch uint32 `json:"-"`
}

// ownSlot is the slot this client opened the repository with.
type ownSlot struct {
	stem string
	hash string       // of <stem>.age when it was opened
	key  age.Identity // opens the keyrings: the slot key or the user's identity
	// slotKey is set for passphrase slots (it is what the cache keeps).
	slotKey *age.X25519Identity
}

func stemID(stem string) string {
	base := path.Base(stem)
	if i := strings.LastIndexByte(base, '-'); i > 0 {
		return base[:i]
	}
	return base
}

// EpochMarkerName is the empty heads/ marker announcing key epoch n, so a
// running client notices a rotation in its idle poll at no extra request.
func EpochMarkerName(n uint32) string { return HeadsDir + "/" + epochMarkerStem + seqString(uint64(n)) }

func parseEpochMarker(base string) (uint32, bool) {
	rest, ok := strings.CutPrefix(base, epochMarkerStem)
	if !ok {
		return 0, false
	}
	n, ok := ParseSeqName(rest)
	if !ok || n == 0 || n > 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}

// slotStems lists the stems of keys/ that have a .age file, sorted, and
// which companions each has.
func (r *Repo) slotStems(ctx context.Context) ([]string, map[string]bool, error) {
	entries, err := r.Relay.List(ctx, KeysDir)
	if err != nil {
		return nil, nil, fmt.Errorf("list key slots: %w", err)
	}
	files := map[string]bool{}
	var stems []string
	for _, e := range entries {
		if e.IsDir {
			continue
		}
		files[e.Name] = true
		if s, ok := strings.CutSuffix(e.Name, slotExtAge); ok {
			stems = append(stems, s)
		}
	}
	sort.Strings(stems)
	return stems, files, nil
}

// slotKeyrings returns the keyrings of a slot whose .age opened to sc: in
// it, or for a passphrase slot in its .ring, opened with the slot key. A
// .ring that does not open with the slot key is damaged, not a wrong key.
func (r *Repo) slotKeyrings(ctx context.Context, stem string, sc *envelope.SlotContent) ([]*envelope.Keyring, error) {
	if sc.Key == nil {
		return sc.Keyrings, nil
	}
	return r.readRing(ctx, stem, sc.Key)
}

func (r *Repo) readRing(ctx context.Context, stem string, key *age.X25519Identity) ([]*envelope.Keyring, error) {
	ring, err := getAll(ctx, r.Relay, stem+slotExtRing, maxKeySlot)
	if err != nil {
		return nil, fmt.Errorf("read key slot %s: %w", stem+slotExtRing, err)
	}
	krs, err := envelope.Unwrap(ring, key)
	if errors.Is(err, envelope.ErrWrongKey) {
		return nil, fmt.Errorf("%s does not open with its slot key: %w", stem+slotExtRing, envelope.ErrCorruptSlot)
	}
	return krs, err
}

// unlock opens the keyrings: first through what this process or the local
// cache remembers of its slot (no scrypt), else by trying every slot with
// the credentials. A client that was a member (it has a cache or an open
// slot) and finds no slot opening any more gets ErrKeyRemoved.
func (r *Repo) unlock(ctx context.Context) error {
	stems, _, err := r.slotStems(ctx)
	if err != nil {
		return err
	}
	cache := loadKeyCache(r.creds.CacheFile)
	if cache != nil && cache.Repository != r.ID() {
		cache = nil
	}
	// The slot this client opened before, if any: when it is gone and no
	// other slot opens, the client was removed.
	var lastSlot string
	switch {
	case r.slot != nil:
		lastSlot = r.slot.stem
	case cache != nil:
		lastSlot = cache.Slot
	}
	if cache != nil && cache.Removed {
		cache = nil
	}
	// Remembered ways in, cheapest first.
	var hints []ownSlot
	if r.slot != nil {
		hints = append(hints, *r.slot)
	}
	if cache != nil {
		h := ownSlot{stem: cache.Slot, hash: cache.SlotHash}
		if cache.SlotKey != "" {
			if k, err := age.ParseX25519Identity(cache.SlotKey); err == nil {
				h.key, h.slotKey = k, k
			}
		} else if r.creds.Identity != nil {
			h.key = r.creds.Identity
		}
		if h.key != nil {
			hints = append(hints, h)
		}
		r.resealed = max(r.resealed, cache.Resealed)
	}
	for _, h := range hints {
		if !slices.Contains(stems, h.stem) {
			continue
		}
		data, err := getAll(ctx, r.Relay, h.stem+slotExtAge, maxKeySlot)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read key slot %s: %w", h.stem+slotExtAge, err)
		}
		var krs []*envelope.Keyring
		if h.slotKey != nil {
			// A passphrase slot whose door is unchanged: its keyrings open
			// with the remembered slot key, no scrypt.
			if slotHash(data) != h.hash {
				continue
			}
			krs, err = r.readRing(ctx, h.stem, h.slotKey)
		} else {
			var sc *envelope.SlotContent
			if sc, err = envelope.OpenSlot(data, h.key); err == nil {
				krs, err = r.slotKeyrings(ctx, h.stem, sc)
			}
		}
		if err != nil || krs[0].RepoID != r.repoID {
			continue
		}
		h.hash = slotHash(data)
		r.unlocked(krs, h)
		return nil
	}

	ids, err := r.creds.identities()
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return errors.New("the repository is encrypted: give passphrase_file, key_file or ESCALE_PASSPHRASE")
	}
	var damaged, foreign []string
	wrong := 0
	for _, stem := range stems {
		data, err := getAll(ctx, r.Relay, stem+slotExtAge, maxKeySlot)
		if errors.Is(err, storage.ErrNotFound) {
			continue // removed since the listing
		}
		if err != nil {
			return fmt.Errorf("read key slot %s: %w", stem+slotExtAge, err)
		}
		sc, err := envelope.OpenSlot(data, ids...)
		switch {
		case errors.Is(err, envelope.ErrWrongKey):
			wrong++
			continue
		case err != nil:
			damaged = append(damaged, fmt.Sprintf("%s (%v)", stem+slotExtAge, err))
			continue
		case sc.RepoID != r.repoID:
			// Left by a client that lost a race to create the repository,
			// or the marker or the slot was replaced.
			foreign = append(foreign, stem+slotExtAge)
			continue
		}
		krs, err := r.slotKeyrings(ctx, stem, sc)
		if err == nil && krs[0].RepoID != r.repoID {
			err = fmt.Errorf("%w: its keyrings belong to another repository", envelope.ErrCorruptSlot)
		}
		if err != nil {
			damaged = append(damaged, fmt.Sprintf("%s (%v)", stem+slotExtAge, err))
			continue
		}
		own := ownSlot{stem: stem, hash: slotHash(data), slotKey: sc.Key}
		if sc.Key != nil {
			own.key = sc.Key
		} else {
			own.key = r.creds.Identity
		}
		// A passphrase slot costs scrypt's 256 MiB once; give it back to
		// the OS now rather than carry it for the life of a daemon.
		debug.FreeOSMemory()
		r.unlocked(krs, own)
		return nil
	}
	debug.FreeOSMemory()
	switch {
	case len(damaged) > 0:
		return fmt.Errorf("no key slot opens with this key, and %d are damaged: %s; restore keys/ from a backup of the relay (if the passphrase or key is also wrong, fix it too)", len(damaged), strings.Join(damaged, "; "))
	case len(foreign) > 0:
		return fmt.Errorf("key slot %s belongs to another repository than the one %s names: the relay's keys or its marker were replaced; restore them from a backup of the relay", strings.Join(foreign, ", "), MarkerName)
	case wrong == 0:
		return errors.New("the relay has no key slot: it is damaged; restore keys/ from a backup of the relay")
	case lastSlot != "" && !slices.Contains(stems, lastSlot):
		// Keep only the memory of having been a member, so every later
		// start says why it cannot open the repository.
		_ = saveKeyCache(r.creds.CacheFile, &keyCache{Repository: r.ID(), Slot: lastSlot, Removed: true})
		return fmt.Errorf("%w: its key slot is gone and no other slot opens with its passphrase or key file; "+
			"ask someone who still has access to run `escale key add` for this client (if you changed the passphrase or key file, check it)", ErrKeyRemoved)
	}
	return fmt.Errorf("%w: no key slot of the relay opens with it; check passphrase_file, key_file or ESCALE_PASSPHRASE", envelope.ErrWrongKey)
}

// unlocked installs keyrings opened through own and refreshes the cache.
func (r *Repo) unlocked(krs []*envelope.Keyring, own ownSlot) {
	r.keys = krs
	r.slot = &own
	r.setup()
	c := &keyCache{Repository: r.ID(), Slot: own.stem, SlotHash: own.hash, Resealed: r.resealed}
	if own.slotKey != nil {
		c.SlotKey = own.slotKey.String()
	}
	// The cache only saves scrypt time: a client that cannot write it
	// still works.
	_ = saveKeyCache(r.creds.CacheFile, c)
}

// noteHeads acts on the epoch markers of a heads/ listing: a newer epoch
// than this client knows means a rotation, so the keys are read again (a
// removed client learns here that its key is gone); then a client that
// writes reseals its long-lived objects in the newest epoch once.
func (r *Repo) noteHeads(ctx context.Context, entries []storage.Entry) error {
	if r.keys == nil {
		return nil
	}
	if r.keyErr != nil {
		return r.keyErr // removed: stays so for the life of the process
	}
	var top uint32
	for _, e := range entries {
		if n, ok := parseEpochMarker(path.Base(e.Name)); ok && !e.IsDir {
			top = max(top, n)
		}
	}
	if top > r.markerSeen {
		if top > r.current().Epoch {
			if err := r.unlock(ctx); err != nil {
				err = fmt.Errorf("key rotation to epoch %d: %w", top, err)
				if errors.Is(err, ErrKeyRemoved) {
					r.keyErr = err
				}
				return err // else retried at the next poll
			}
		}
		r.markerSeen = top
	}
	if r.owner != "" && len(r.keys) > 1 && r.resealed < r.current().Epoch {
		if err := r.resealOwn(ctx); err != nil {
			return fmt.Errorf("rewrite this client's relay records in key epoch %d: %w", r.current().Epoch, err)
		}
	}
	return nil
}

// SetOwner names the client (by id) whose long-lived relay objects this
// process may rewrite in a new key epoch: only that client writes under
// clients/<cid>/. Read-only users (escale ls, dry runs) leave it unset.
func (r *Repo) SetOwner(cid string) { r.owner = cid }

// longLivedKind is the kind of an object of clients/<cid>/ that lives until
// its client replaces it (records, acks, wants, index), false for manifests
// and data, which garbage collection removes anyway.
func longLivedKind(rel string) (envelope.Kind, bool) {
	switch {
	case rel == "info", rel == "acks", rel == "wants":
		return envelope.KindAcks, true
	case strings.HasPrefix(rel, "index/"):
		return envelope.KindIndex, true
	}
	return 0, false
}

// ObjectEpoch reports the key epoch the object name was sealed with, reading
// only its first few KiB (0 for plain objects).
func (r *Repo) ObjectEpoch(ctx context.Context, name string) (uint32, error) {
	rc, err := r.Relay.Open(ctx, name, 0, maxObjectHeaders)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return r.opener.Epoch(rc, name)
}

// resealOwn rewrites this client's long-lived objects sealed with an older
// epoch in the newest one, same name, same content, so the old epoch can be
// retired without waiting for the client to change them.
func (r *Repo) resealOwn(ctx context.Context) error {
	newest := r.current()
	dir := ClientDir(r.owner)
	var names []string
	if err := r.Relay.Walk(ctx, dir, func(e storage.Entry) error {
		if !e.IsDir {
			names = append(names, e.Name)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, name := range names {
		kind, ok := longLivedKind(strings.TrimPrefix(name, dir+"/"))
		if !ok {
			continue
		}
		ep, err := r.ObjectEpoch(ctx, name)
		var ve *envelope.VerifyError
		switch {
		case errors.Is(err, storage.ErrNotFound), errors.As(err, &ve):
			continue // gone, or not ours to trust: the engine reports it
		case err != nil:
			return err
		case ep >= newest.Epoch:
			continue
		}
		data, err := getAll(ctx, r.Relay, name, MaxManifest+1<<20)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		plain, err := r.opener.OpenBytes(data, kind, name, MaxManifest)
		if err != nil {
			continue
		}
		sealed, err := r.sealer.SealBytes(kind, name, plain)
		if err != nil {
			return fmt.Errorf("seal %s: %w", name, err)
		}
		if _, err := r.Relay.Put(ctx, name, bytes.NewReader(sealed), int64(len(sealed))); err != nil {
			return err
		}
	}
	r.resealed = newest.Epoch
	if c := loadKeyCache(r.creds.CacheFile); c != nil && c.Repository == r.ID() {
		c.Resealed = r.resealed
		_ = saveKeyCache(r.creds.CacheFile, c) // at worst the next start checks again
	}
	return nil
}

// Keyrings returns the keyrings of every live epoch, oldest first (nil for
// plain repositories). They are secret: escale key export writes them.
func (r *Repo) Keyrings() []*envelope.Keyring { return slices.Clone(r.keys) }

// Epochs lists the live key epochs, oldest first.
func (r *Repo) Epochs() []uint32 {
	var out []uint32
	for _, k := range r.keys {
		out = append(out, k.Epoch)
	}
	return out
}

// KeySlots lists the key slots: kind, label, creation, never a secret.
func (r *Repo) KeySlots(ctx context.Context) ([]SlotInfo, error) {
	if r.keys == nil {
		return nil, errors.New("the repository is not encrypted (encryption = none): it has no keys")
	}
	stems, files, err := r.slotStems(ctx)
	if err != nil {
		return nil, err
	}
	var out []SlotInfo
	for _, stem := range stems {
		si := SlotInfo{ID: stemID(stem), Own: r.slot != nil && r.slot.stem == stem}
		if !files[stem+slotExtInfo] {
			si.Legacy, si.Label = true, "(no label: written before key rotation existed)"
		} else if err := r.GetJSON(ctx, envelope.KindKeyCheck, stem+slotExtInfo, maxSlotInfo, &si); err != nil {
			var ve *envelope.VerifyError
			if !errors.As(err, &ve) && !errors.Is(err, ErrInvalid) {
				return nil, fmt.Errorf("key slot %s: %w", si.ID, err)
			}
			// Listed anyway, so it can be removed.
			si.Damaged, si.Label = true, "(damaged or forged: "+err.Error()+")"
		} else if si.Epoch, err = r.ObjectEpoch(ctx, stem+slotExtInfo); err != nil {
			return nil, fmt.Errorf("key slot %s: %w", si.ID, err)
		}
		out = append(out, si)
	}
	return out, nil
}

func (r *Repo) putSlotInfo(ctx context.Context, stem string, si SlotInfo) error {
	si.V = 1
	if _, err := r.PutJSON(ctx, envelope.KindKeyCheck, stem+slotExtInfo, si); err != nil {
		return fmt.Errorf("write key slot %s: %w", stem+slotExtInfo, err)
	}
	return nil
}

func (r *Repo) putRaw(ctx context.Context, name string, data []byte) error {
	if _, err := r.Relay.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("write key slot %s: %w", name, err)
	}
	return nil
}

func (r *Repo) needKeys() error {
	if r.keys == nil {
		return errors.New("the repository is not encrypted (encryption = none): it has no keys to manage")
	}
	return nil
}

// AddPassphrase adds a slot opened by passphrase. opts tune scrypt (tests).
func (r *Repo) AddPassphrase(ctx context.Context, passphrase, label string, opts ...envelope.Option) (SlotInfo, error) {
	if err := r.needKeys(); err != nil {
		return SlotInfo{}, err
	}
	if passphrase == "" {
		return SlotInfo{}, errors.New("empty passphrase")
	}
	return r.addPassphraseSlot(ctx, envelope.RandomName(), passphrase, label, opts)
}

func (r *Repo) addPassphraseSlot(ctx context.Context, id, passphrase, label string, opts []envelope.Option) (SlotInfo, error) {
	key, err := age.GenerateX25519Identity()
	if err != nil {
		return SlotInfo{}, err
	}
	door, err := envelope.WrapSlotKey(key, r.repoID, passphrase, opts...)
	if err != nil {
		return SlotInfo{}, err
	}
	ring, err := envelope.WrapIdentity(r.keys, key.Recipient())
	if err != nil {
		return SlotInfo{}, err
	}
	stem := slotStem(id, r.repoID)
	si := SlotInfo{Kind: SlotPassphrase, Label: label, Recipient: key.Recipient().String(), Created: time.Now().UTC().Truncate(time.Second), ID: id}
	if err := r.putRaw(ctx, stem+slotExtRing, ring); err != nil {
		return SlotInfo{}, err
	}
	if err := r.putSlotInfo(ctx, stem, si); err != nil {
		return SlotInfo{}, err
	}
	if err := r.putRaw(ctx, stem+slotExtAge, door); err != nil {
		return SlotInfo{}, err
	}
	if r.slot == nil {
		// The creator's own slot: remember it like Open would.
		r.slot = &ownSlot{stem: stem, hash: slotHash(door), key: key, slotKey: key}
	}
	return si, nil
}

// AddIdentity adds a slot opened by the age identity of recipient.
func (r *Repo) AddIdentity(ctx context.Context, recipient *age.X25519Recipient, label string) (SlotInfo, error) {
	if err := r.needKeys(); err != nil {
		return SlotInfo{}, err
	}
	if recipient == nil {
		return SlotInfo{}, errors.New("no age recipient")
	}
	id := r.current().ObjectName([]byte("identity slot"), []byte(recipient.String()))
	stem := slotStem(id, r.repoID)
	stems, _, err := r.slotStems(ctx)
	if err != nil {
		return SlotInfo{}, err
	}
	if slices.Contains(stems, stem) {
		return SlotInfo{}, fmt.Errorf("recipient %s already has key slot %s", recipient, id)
	}
	return r.addIdentitySlot(ctx, id, recipient, label)
}

func (r *Repo) addIdentitySlot(ctx context.Context, id string, recipient *age.X25519Recipient, label string) (SlotInfo, error) {
	door, err := envelope.WrapIdentity(r.keys, recipient)
	if err != nil {
		return SlotInfo{}, err
	}
	stem := slotStem(id, r.repoID)
	si := SlotInfo{Kind: SlotIdentity, Label: label, Recipient: recipient.String(), Created: time.Now().UTC().Truncate(time.Second), ID: id}
	if err := r.putSlotInfo(ctx, stem, si); err != nil {
		return SlotInfo{}, err
	}
	if err := r.putRaw(ctx, stem+slotExtAge, door); err != nil {
		return SlotInfo{}, err
	}
	return si, nil
}

// findSlot finds a slot by id or label.
func (r *Repo) findSlot(ctx context.Context, ref string) (SlotInfo, error) {
	slots, err := r.KeySlots(ctx)
	if err != nil {
		return SlotInfo{}, err
	}
	var hits []SlotInfo
	for _, s := range slots {
		if s.ID == ref || s.Label == ref {
			hits = append(hits, s)
		}
	}
	switch len(hits) {
	case 0:
		return SlotInfo{}, fmt.Errorf("no key slot has id or label %q; `escale key list` shows them", ref)
	case 1:
		return hits[0], nil
	}
	return SlotInfo{}, fmt.Errorf("%d key slots have label %q; name one by its id (`escale key list`)", len(hits), ref)
}

// RemoveSlot deletes the slot with id or label ref. The slot this client
// opened with and the last slot are refused. A removed key still knows the
// live epochs: Rotate afterwards so it cannot read what is written next.
func (r *Repo) RemoveSlot(ctx context.Context, ref string) (SlotInfo, error) {
	if err := r.needKeys(); err != nil {
		return SlotInfo{}, err
	}
	si, err := r.findSlot(ctx, ref)
	if err != nil {
		return SlotInfo{}, err
	}
	if si.Own {
		return SlotInfo{}, fmt.Errorf("key slot %s (%s) is the one this client opened the repository with; remove it from a client that uses another key", si.ID, si.Label)
	}
	stems, _, err := r.slotStems(ctx)
	if err != nil {
		return SlotInfo{}, err
	}
	if len(stems) <= 1 {
		return SlotInfo{}, errors.New("it is the last key slot: the repository would be locked for good")
	}
	stem := slotStem(si.ID, r.repoID)
	// The way in first: once it is gone the slot no longer opens.
	for _, ext := range []string{slotExtAge, slotExtRing, slotExtInfo} {
		if err := r.Relay.Delete(ctx, stem+ext); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return SlotInfo{}, fmt.Errorf("delete key slot %s: %w", stem+ext, err)
		}
	}
	return si, nil
}

// RewriteOptions tune Rotate and PruneEpochs.
type RewriteOptions struct {
	// AcceptOldSlots rewrites slots whose info is sealed with an epoch older
	// than the newest: left so by an interrupted rotation, or planted by a
	// former member who kept an old epoch's keys and can write to the
	// storage. Without it such slots stop the rewrite, so the keys are never
	// re-encrypted to a recipient nobody checked (escale key list shows them).
	AcceptOldSlots bool
}

// writeSlots rewrites every slot to hold live (oldest first), this client's
// own slot first: an interrupted run is repaired by running any slot
// rewrite (escale key prune) again from the same client.
func (r *Repo) writeSlots(ctx context.Context, live []*envelope.Keyring, o RewriteOptions) error {
	slots, err := r.KeySlots(ctx)
	if err != nil {
		return err
	}
	var legacy, damaged, old []string
	for _, s := range slots {
		switch {
		case s.Legacy:
			legacy = append(legacy, s.ID)
		case s.Damaged:
			damaged = append(damaged, s.ID)
		case s.Epoch < r.current().Epoch && !o.AcceptOldSlots:
			old = append(old, fmt.Sprintf("%s (%s, epoch %d)", s.ID, s.Label, s.Epoch))
		}
	}
	if len(old) > 0 {
		return fmt.Errorf("key slots %s were not rewritten by the last rotation: an interrupted rotation, or slots planted by a former member; remove the ones you do not know (`escale key remove`), then run again accepting the rest (--accept-old-slots)", strings.Join(old, ", "))
	}
	if len(legacy) > 0 {
		return fmt.Errorf("key slots %s predate key rotation and cannot be rewritten without their passphrase: add a new key for their holders (`escale key add`), then `escale key remove` them", strings.Join(legacy, ", "))
	}
	if len(damaged) > 0 {
		// Never re-encrypt the keys to a recipient that no key holder vouched for.
		return fmt.Errorf("the infos of key slots %s are damaged or forged: `escale key remove` them (and re-add their holders) before rewriting slots", strings.Join(damaged, ", "))
	}
	slices.SortStableFunc(slots, func(a, b SlotInfo) int {
		if a.Own == b.Own {
			return 0
		}
		if a.Own {
			return -1
		}
		return 1
	})
	// New slot infos are sealed with the newest epoch.
	prev := r.keys
	r.keys = live
	r.setup()
	for _, s := range slots {
		rcp, err := age.ParseX25519Recipient(s.Recipient)
		if err != nil {
			r.keys = prev
			r.setup()
			return fmt.Errorf("key slot %s: bad recipient: %w", s.ID, err)
		}
		wrapped, err := envelope.WrapIdentity(live, rcp)
		if err != nil {
			return err
		}
		stem := slotStem(s.ID, r.repoID)
		ext := slotExtRing
		if s.Kind == SlotIdentity {
			ext = slotExtAge
		}
		if err := r.putRaw(ctx, stem+ext, wrapped); err != nil {
			return err
		}
		if err := r.putSlotInfo(ctx, stem, s); err != nil {
			return err
		}
		if s.Own && ext == slotExtAge {
			r.slot.hash = slotHash(wrapped)
		}
	}
	if r.slot != nil {
		r.unlocked(live, *r.slot)
	}
	return nil
}

// Rotate starts a new key epoch: every slot is rewritten to hold it, then
// heads/epoch.<n> tells running clients. Writers seal with the newest epoch
// from their next round on; a key removed before cannot open what they
// write. Older epochs stay until PruneEpochs finds no object using them.
func (r *Repo) Rotate(ctx context.Context, o RewriteOptions) (*envelope.Keyring, error) {
	if err := r.needKeys(); err != nil {
		return nil, err
	}
	next, err := envelope.NextKeyring(r.current())
	if err != nil {
		return nil, err
	}
	live := append(slices.Clone(r.keys), next)
	if err := r.writeSlots(ctx, live, o); err != nil {
		return nil, err
	}
	if err := r.putRaw(ctx, EpochMarkerName(next.Epoch), nil); err != nil {
		return nil, err
	}
	r.markerSeen = next.Epoch
	entries, err := r.Relay.List(ctx, HeadsDir)
	if err != nil {
		return next, nil // stale markers are harmless; the next rotation removes them
	}
	for _, e := range entries {
		if n, ok := parseEpochMarker(path.Base(e.Name)); ok && n < next.Epoch {
			_ = r.Relay.Delete(ctx, e.Name) // harmless if it stays
		}
	}
	return next, nil
}

// EpochUse is how many relay objects an epoch still seals.
type EpochUse struct {
	Epoch   uint32
	Objects int
	Clients []string // ids of the clients whose objects they are
}

// PruneReport says what PruneEpochs found and did.
type PruneReport struct {
	Use     []EpochUse // per live epoch, oldest first
	Dropped []uint32   // epochs removed from every slot
	Unknown int        // objects no live epoch opens (left alone)
}

// PruneEpochs drops from every slot the epochs older than the newest that
// no object under clients/ is sealed with any more (PROTOCOL.md §4.1), and
// rewrites every slot even when nothing is dropped, which also repairs an
// interrupted rotation.
func (r *Repo) PruneEpochs(ctx context.Context, o RewriteOptions) (*PruneReport, error) {
	if err := r.needKeys(); err != nil {
		return nil, err
	}
	var names []string
	if err := r.Relay.Walk(ctx, ClientsDir, func(e storage.Entry) error {
		if !e.IsDir {
			names = append(names, e.Name)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list relay objects: %w", err)
	}
	use := map[uint32]*EpochUse{}
	for _, k := range r.keys {
		use[k.Epoch] = &EpochUse{Epoch: k.Epoch}
	}
	rep := &PruneReport{}
	for _, name := range names {
		ep, err := r.ObjectEpoch(ctx, name)
		var ve *envelope.VerifyError
		switch {
		case errors.Is(err, storage.ErrNotFound):
			continue
		case errors.As(err, &ve):
			rep.Unknown++
			continue
		case err != nil:
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		u := use[ep]
		if u == nil {
			continue
		}
		u.Objects++
		cid, _, _ := strings.Cut(strings.TrimPrefix(name, ClientsDir+"/"), "/")
		if !slices.Contains(u.Clients, cid) {
			u.Clients = append(u.Clients, cid)
		}
	}
	newest := r.current().Epoch
	var live []*envelope.Keyring
	for _, k := range r.keys {
		if k.Epoch == newest || use[k.Epoch].Objects > 0 {
			live = append(live, k)
			rep.Use = append(rep.Use, *use[k.Epoch])
		} else {
			rep.Dropped = append(rep.Dropped, k.Epoch)
		}
	}
	if err := r.writeSlots(ctx, live, o); err != nil {
		return nil, err
	}
	return rep, nil
}

// KeysLockName is the relay lock every slot rewrite (add, remove, rotate,
// prune) holds, so two admins never rewrite slots from different keyrings.
const KeysLockName = "keys"

// LockKeys takes the "keys" lock. The lock seals its heartbeats through a
// copy of r, so a rotation that changes r's keys under it races with
// nothing.
func (r *Repo) LockKeys(ctx context.Context, o LockOptions) (*Lock, error) {
	c := *r
	return c.AcquireLock(ctx, KeysLockName, o)
}
