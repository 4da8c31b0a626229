// Package storage is escale's only door to rclone. Every relay access —
// configuration through librclone's RPC, data through rclone's fs packages —
// goes through here, so the rest of escale sees a small, context-bound,
// retrying, error-classifying object store and never an rclone type.
package storage

import (
	"errors"
	"fmt"
	"time"
)

// Entry describes one object (or directory) on a relay.
type Entry struct {
	// Name is the object's path relative to the relay root, with '/' separators.
	Name string
	// Size in bytes; -1 when the backend does not know it.
	Size int64
	// ModTime as the backend reports it; its precision is Features.ModTimePrecision.
	ModTime time.Time
	// Hashes maps an rclone hash name ("md5", "sha1", ...) to its hex value,
	// holding only the ones the backend supplied without extra requests.
	Hashes map[string]string
	// IsDir is set for directories in listings.
	IsDir bool
}

// Usage is what the backend reports about its space. A field is -1 when unknown.
type Usage struct {
	Total int64
	Used  int64
	Free  int64
}

// Features says what a backend can do. The protocol asks; it never guesses.
type Features struct {
	// Type is the rclone backend type, e.g. "sftp", "s3", "local".
	Type string
	// Hashes lists the hash names the backend computes natively.
	Hashes []string
	// ModTimePrecision is how finely mtimes are kept; 0 means mtimes are not
	// supported at all (rclone's ModTimeNotSupported).
	ModTimePrecision time.Duration
	// SetModTime is true when an upload can carry an mtime the backend keeps.
	SetModTime bool
	// ConditionalCreate is true when PutIfAbsent is atomic on the server
	// (S3's If-None-Match); otherwise PutIfAbsent is check-then-put.
	ConditionalCreate bool
	// ServerSideMove is true when Move renames without copying bytes.
	ServerSideMove bool
	// ServerSideCopy is true when the server can copy an object itself; Move
	// then falls back to copy+delete. With neither, Move is KindUnsupported.
	ServerSideCopy bool
	// About is true when the backend reports usage.
	About bool
	// ChangeNotify is true when the backend can push change notifications.
	ChangeNotify bool
	// MaxObjectSize is the largest object the backend accepts, 0 when unlimited.
	MaxObjectSize int64
	// CaseInsensitive is true when names differing only in case collide.
	CaseInsensitive bool
	// IsLocal is true for a directory on the local disk.
	IsLocal bool
	// BucketBased is true for object stores (s3, ...) where folders exist only
	// as name prefixes: an empty folder vanishes and Rmdir is a no-op.
	BucketBased bool
}

// Kind classifies a storage failure so the engine can decide what to do.
type Kind int

// The kinds of storage failure.
const (
	KindFatal       Kind = iota // anything not classified below: stop and report
	KindNotFound                // the object or the directory does not exist
	KindExists                  // PutIfAbsent found the name taken
	KindQuota                   // no space left, quota or object size exceeded
	KindAuth                    // credentials refused or permission denied
	KindTransient               // network, timeout, rate limit, 5xx: retry later
	KindUnsupported             // the backend cannot do this operation
	KindUnreachable             // host cannot be resolved or connected to
)

var kindNames = [...]string{"fatal", "not found", "already exists", "no space", "access denied", "transient", "unsupported", "unreachable"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Sentinels to test a kind with errors.Is(err, storage.ErrNotFound).
var (
	ErrNotFound    = &Error{Kind: KindNotFound}
	ErrExists      = &Error{Kind: KindExists}
	ErrQuota       = &Error{Kind: KindQuota}
	ErrAuth        = &Error{Kind: KindAuth}
	ErrTransient   = &Error{Kind: KindTransient}
	ErrUnsupported = &Error{Kind: KindUnsupported}
	ErrUnreachable = &Error{Kind: KindUnreachable}
)

// Error is a classified storage failure.
type Error struct {
	Op   string // "put", "open", "list", ...
	Name string // the object or directory, relative to the relay root
	Kind Kind
	Err  error
}

func (e *Error) Error() string {
	msg := e.Op
	if e.Name != "" {
		msg += " " + e.Name
	}
	if e.Err != nil {
		if hint := kindHints[e.Kind]; hint != "" {
			return fmt.Sprintf("%s: %s: %v (%s)", msg, e.Kind, e.Err, hint)
		}
		return fmt.Sprintf("%s: %s: %v", msg, e.Kind, e.Err)
	}
	if msg == "" {
		return e.Kind.String()
	}
	return msg + ": " + e.Kind.String()
}

// kindHints say what to do next, for the kinds where the user can act.
var kindHints = map[Kind]string{
	KindQuota:       "free space on the relay or raise its quota",
	KindAuth:        "check the relay's credentials and permissions",
	KindUnreachable: "check the host name, the network, and that the server is running",
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error of the same kind, so sentinels work with errors.Is.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Kind == e.Kind && t.Op == "" && t.Err == nil
	}
	return false
}

// KindOf returns the kind of a storage error, KindFatal for anything else.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindFatal
}
