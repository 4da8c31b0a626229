// Package protocol is the relay protocol of docs/PROTOCOL.md: the names of
// relay objects, their formats, and sealed reads and writes over a storage
// relay. It makes no sync decisions; the engine does.
package protocol

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is the relay format version this code writes: in the marker of
// the relays it creates and in every object with a version field. Version 2
// put the new chunks of a big file into packs (PROTOCOL.md §7) and seals
// objects in envelope format 2 (a keyed BLAKE3 tag, §4.2); everything else
// is as in version 1.
const Version = 2

// MinVersion is the oldest format version this code still reads: it syncs
// with a version 1 relay and the objects its older clients wrote.
const MinVersion = 1

// Readable reports whether an object of format version v can be read.
func Readable(v int) bool { return v >= MinVersion && v <= Version }

// Names of the layout (docs/PROTOCOL.md §2).
const (
	MarkerName = "escale.json"
	KeysDir    = "keys"
	HeadsDir   = "heads"
	ClientsDir = "clients"
	LocksDir   = "locks"
)

// CIDLen is the length of a client id: 26 base32 characters.
const CIDLen = 26

func seqString(n uint64) string { return fmt.Sprintf("%016x", n) }

// ClientDir is the prefix only client cid writes under.
func ClientDir(cid string) string { return ClientsDir + "/" + cid }

// ManifestName is manifest seq of client cid.
func ManifestName(cid string, seq uint64) string {
	return ClientDir(cid) + "/log/" + seqString(seq)
}

// LogDir holds the manifests of client cid.
func LogDir(cid string) string { return ClientDir(cid) + "/log" }

// DataDir holds the packs and chunks of client cid.
func DataDir(cid string) string { return ClientDir(cid) + "/data" }

// DataName is data object id of client cid.
func DataName(cid, id string) string { return DataDir(cid) + "/" + id }

// WantsName holds client cid's republish request.
func WantsName(cid string) string { return ClientDir(cid) + "/wants" }

// AcksName holds client cid's acknowledgements.
func AcksName(cid string) string { return ClientDir(cid) + "/acks" }

// InfoName holds client cid's record.
func InfoName(cid string) string { return ClientDir(cid) + "/info" }

// IndexDir holds client cid's index.
func IndexDir(cid string) string { return ClientDir(cid) + "/index" }

// IndexRootName is generation gen of cid's index root.
func IndexRootName(cid string, gen uint64) string {
	return IndexDir(cid) + "/root." + seqString(gen)
}

// IndexPageName is generation gen of one page of cid's index.
func IndexPageName(cid, page string, gen uint64) string {
	return IndexDir(cid) + "/" + page + "." + seqString(gen)
}

// Head is a parsed marker of heads/.
type Head struct {
	CID  string
	Seq  uint64 // the manifest sequence number, or the generation when Ack or Want
	Ack  bool   // the client rewrote its acknowledgements
	Want bool   // the client rewrote its republish request
}

// Manifest reports whether the marker announces a manifest.
func (h Head) Manifest() bool { return !h.Ack && !h.Want }

// Name is the marker's relay name.
func (h Head) Name() string {
	if h.Ack {
		return HeadsDir + "/" + h.CID + ".a" + seqString(h.Seq)
	}
	if h.Want {
		return HeadsDir + "/" + h.CID + ".w" + seqString(h.Seq)
	}
	return HeadsDir + "/" + h.CID + "." + seqString(h.Seq)
}

// ParseHead parses the base name of a heads/ marker. Anything else — a
// foreign file, a half-written name — is reported as not a head.
func ParseHead(base string) (Head, bool) {
	cid, rest, ok := strings.Cut(base, ".")
	if !ok || !ValidCID(cid) {
		return Head{}, false
	}
	h := Head{CID: cid}
	switch {
	case strings.HasPrefix(rest, "a"):
		h.Ack = true
		rest = rest[1:]
	case strings.HasPrefix(rest, "w"):
		h.Want = true
		rest = rest[1:]
	}
	n, ok := ParseSeqName(rest)
	if !ok {
		return Head{}, false
	}
	h.Seq = n
	return h, true
}

// ValidCID reports whether s has the form of a client id.
func ValidCID(s string) bool {
	if len(s) != CIDLen {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// ValidObjectID reports whether s has the form of a data object id.
func ValidObjectID(s string) bool { return ValidCID(s) }

// ParseSeqName parses the 16-hex-digit base name of a manifest.
func ParseSeqName(base string) (uint64, bool) {
	if len(base) != 16 {
		return 0, false
	}
	// Only the canonical form: lowercase, as written, so one number has one name.
	for _, c := range base {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(base, 16, 64)
	return n, err == nil
}
