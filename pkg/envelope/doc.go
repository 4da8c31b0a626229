// Package envelope seals and opens every object escale stores on a relay:
// manifests, index pages, packs, chunks, heads, acks, locks. The relay
// operator must learn no file name, content, mtime or per-file size, and must
// not be able to forge, swap, truncate or move objects undetected
// (docs/PROTOCOL.md, invariant 5). FORMAT.md in this directory is the byte
// layout.
//
// An object is age(header | records | end | tag | zero padding):
//
//   - age (X25519, to the key epoch's recipient) hides everything and
//     detects any change or truncation of the stored bytes.
//   - The header binds the object to its repository, key epoch, kind and
//     relay name, so a copy moved to another name, kind or repository is
//     refused.
//   - The payload is zstd-compressed unless its first 64 KiB do not shrink,
//     and cut into records of at most 64 KiB so no reader ever holds more.
//   - The tag is a keyed BLAKE3 (key derived from the epoch's MAC key) of
//     every inner byte before it; format version 1, still read, used
//     HMAC-SHA256. age alone does not authenticate the sender: anyone who knows
//     the recipient (a public key) can encrypt to it; only key holders can
//     compute the tag.
//   - Zero padding rounds the size (powers of two up to 64 KiB, Padmé above),
//     so sizes leak a few bits, not a file's length.
//
// # Reading is streaming: trust nothing before io.EOF
//
// Opener.Open checks the header at once, but the tag sits at the end of the
// object. The reader it returns yields plaintext as it decrypts; only when it
// returns io.EOF has the whole object been verified. A *VerifyError before
// or instead of io.EOF means the object must be treated as absent ("not there
// yet"), and anything already read from it discarded. Stage big objects in a
// temporary file and act on them after io.EOF; use OpenBytes for small ones.
//
// # Keys
//
// A Keyring is one key epoch: an age identity, a MAC key and a name key.
// NextKeyring makes the next epoch (new identity and MAC key, same name key,
// so names survive a rotation). Key slots (WrapPassphrase, WrapIdentity,
// Unwrap, OpenSlot) store every live epoch's keyring, age-encrypted to a
// passphrase (scrypt: run once per process) or to an age key; WrapSlotKey
// wraps a passphrase slot's slot key, to which its keyrings are encrypted so
// an admin can rotate without knowing the passphrase. ObjectName derives
// opaque relay names with the name key; RandomName makes random ones of the
// same shape. Opener.Epoch tells an object's epoch from its age header.
//
// # Plain mode
//
// With encryption = none, NewPlainSealer and NewPlainOpener use the same
// header and framing, no age, no padding, and a keyless BLAKE3 (SHA-256 in
// version 1) in place of the tag: it catches corruption, not forgery. A flag in the header and the
// outer magic make an age client refuse plain objects and the reverse.
//
// # Choices beyond the original design note
//
//   - The tag covers the stored inner bytes (header, framing, compressed
//     payload), not header and plaintext: every byte is authenticated, the
//     plain checksum catches every bit flip (zstd ignores some header bits),
//     and the plaintext, a function of those bytes, is covered as well.
//   - Objects up to 64 KiB are padded to a power of two (at least 512 bytes)
//     rather than by Padmé: they are the metadata whose exact size would
//     tell how much changed, and doubling them costs little.
//   - Opener checks that the header's epoch is the epoch whose identity
//     decrypted the object, and accepts exactly one age recipient stanza.
//   - Errors of the source reader (network) are returned as such, not as
//     *VerifyError: the object may be fine and worth a retry.
//   - The envelope cannot see replays at the same name (an older copy of an
//     index page put back). The protocol binds versions (sequence numbers
//     in manifests) for that.
package envelope
