package storage

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/pkg/sftp"
	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/fserrors"
	"github.com/rclone/rclone/fs/hash"
)

// classify returns the Kind of any error from rclone, the OS or the network.
// A *storage.Error keeps its own kind. It never returns a kind for nil: check
// the error first.
//
// Unreachable is tested before transient on purpose: rclone counts
// "connection refused" as retriable, but a relay whose host refuses or cannot
// be resolved is a configuration or network problem that a few quick retries
// will not fix; the engine backs off at its own pace instead. A timeout, even
// while connecting, is transient: the host may just be slow.
func classify(err error) Kind {
	var se *Error
	if errors.As(err, &se) {
		return se.Kind
	}
	for _, rule := range classifyRules {
		if k, ok := rule(err); ok {
			return k
		}
	}
	return KindFatal
}

// classifyRules are tried in order; the first that recognises the error wins.
var classifyRules = []func(error) (Kind, bool){
	contextKind,
	configKind,
	unreachableKind,
	sentinelKind,
	quotaKind,
	authKind,
	protocolKind,
	messageKind,
	transientKind,
}

func contextKind(err error) (Kind, bool) {
	// A deadline or a cancellation says nothing bad about the storage.
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return KindTransient, true
	}
	return 0, false
}

func configKind(err error) (Kind, bool) {
	if errors.Is(err, fs.ErrorNotFoundInConfigFile) {
		return KindFatal, true
	}
	return 0, false
}

var unreachableErrnos = []error{
	syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
	syscall.EHOSTDOWN, syscall.ENETDOWN, syscall.EADDRNOTAVAIL,
}

func unreachableKind(err error) (Kind, bool) {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return KindUnreachable, true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return KindUnreachable, true
	}
	for _, e := range unreachableErrnos {
		if errors.Is(err, e) {
			return KindUnreachable, true
		}
	}
	return 0, false
}

var (
	notFoundErrors = []error{
		fs.ErrorObjectNotFound, fs.ErrorDirNotFound, os.ErrNotExist,
	}
	unsupportedErrors = []error{
		fs.ErrorCantMove, fs.ErrorCantCopy, fs.ErrorCantPurge, fs.ErrorCantDirMove,
		fs.ErrorNotImplemented, fs.ErrorCommandNotFound, fs.ErrorCantUploadEmptyFiles,
		fs.ErrorCantSetModTime, fs.ErrorCantSetModTimeWithoutDelete,
		fs.ErrorCantShareDirectories, errors.ErrUnsupported, hash.ErrUnsupported,
	}
)

func sentinelKind(err error) (Kind, bool) {
	for _, e := range notFoundErrors {
		if errors.Is(err, e) {
			return KindNotFound, true
		}
	}
	for _, e := range unsupportedErrors {
		if errors.Is(err, e) {
			return KindUnsupported, true
		}
	}
	return 0, false
}

func quotaKind(err error) (Kind, bool) {
	if fserrors.IsErrNoSpace(err) || errors.Is(err, syscall.ENOSPC) ||
		errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG) {
		return KindQuota, true
	}
	return 0, false
}

func authKind(err error) (Kind, bool) {
	if errors.Is(err, os.ErrPermission) || errors.Is(err, fs.ErrorPermissionDenied) {
		return KindAuth, true
	}
	return 0, false
}

// protocolKind reads the status code a protocol attached to the error.
func protocolKind(err error) (Kind, bool) {
	var tpErr *textproto.Error
	if errors.As(err, &tpErr) {
		return ftpKind(tpErr.Code, tpErr.Msg)
	}
	var sftpErr *sftp.StatusError
	if errors.As(err, &sftpErr) {
		return sftpKind(sftpErr.Code)
	}
	if errors.Is(err, sftp.ErrSSHFxConnectionLost) || errors.Is(err, sftp.ErrSSHFxNoConnection) {
		return KindTransient, true
	}
	if code := apiErrorCode(err); code != "" {
		if k, ok := apiCodeKinds[code]; ok {
			return k, true
		}
	}
	if status := httpStatus(err); status != 0 {
		return httpKind(status)
	}
	return 0, false
}

// httpKind maps an HTTP status code to a kind.
func httpKind(status int) (Kind, bool) {
	switch status {
	case http.StatusNotFound, http.StatusGone:
		return KindNotFound, true
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusProxyAuthRequired:
		return KindAuth, true
	case http.StatusInsufficientStorage, http.StatusRequestEntityTooLarge:
		return KindQuota, true
	case http.StatusPreconditionFailed:
		return KindExists, true
	case http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return KindUnsupported, true
	case http.StatusRequestTimeout, http.StatusLocked, http.StatusTooEarly, http.StatusTooManyRequests:
		return KindTransient, true
	}
	switch {
	case status >= 500 && status <= 599:
		return KindTransient, true
	case status >= 400 && status <= 499:
		return KindFatal, true
	}
	return 0, false
}

// ftpKind maps an FTP reply code (RFC 959, RFC 3659) to a kind.
func ftpKind(code int, msg string) (Kind, bool) {
	switch code {
	case 530, 532: // not logged in, need account
		return KindAuth, true
	case 550: // file unavailable: not found or no access
		lower := strings.ToLower(msg)
		if strings.Contains(lower, "permission") || strings.Contains(lower, "denied") {
			return KindAuth, true
		}
		return KindNotFound, true
	case 452, 552: // insufficient storage, exceeded storage allocation
		return KindQuota, true
	case 421, 425, 426, 450, 451: // service, data connection or local trouble
		return KindTransient, true
	case 202, 502, 504: // command not implemented
		return KindUnsupported, true
	}
	if code >= 500 && code <= 599 {
		return KindFatal, true
	}
	return 0, false
}

// SFTP status codes (draft-ietf-secsh-filexfer): pkg/sftp keeps them unexported.
const (
	sftpNoSuchFile       = 2
	sftpPermissionDenied = 3
	sftpNoConnection     = 6
	sftpConnectionLost   = 7
	sftpOpUnsupported    = 8
	sftpNoSuchPath       = 10
	sftpWriteProtect     = 12
	sftpNoSpace          = 14
	sftpQuotaExceeded    = 15
)

func sftpKind(code uint32) (Kind, bool) {
	switch code {
	case sftpNoSuchFile, sftpNoSuchPath:
		return KindNotFound, true
	case sftpPermissionDenied, sftpWriteProtect:
		return KindAuth, true
	case sftpNoConnection, sftpConnectionLost:
		return KindTransient, true
	case sftpOpUnsupported:
		return KindUnsupported, true
	case sftpNoSpace, sftpQuotaExceeded:
		return KindQuota, true
	}
	return 0, false
}

// apiCodeKinds maps S3-style error codes (smithy APIError.ErrorCode) to kinds.
var apiCodeKinds = map[string]Kind{
	"NoSuchKey": KindNotFound, "NoSuchBucket": KindNotFound, "NotFound": KindNotFound,
	"AccessDenied": KindAuth, "InvalidAccessKeyId": KindAuth, "SignatureDoesNotMatch": KindAuth,
	"ExpiredToken": KindAuth, "InvalidToken": KindAuth, "AllAccessDisabled": KindAuth,
	"PreconditionFailed": KindExists,
	"EntityTooLarge":     KindQuota, "QuotaExceeded": KindQuota,
	"SlowDown": KindTransient, "RequestTimeout": KindTransient, "InternalError": KindTransient,
	"ServiceUnavailable": KindTransient, "Throttling": KindTransient,
	"NotImplemented": KindUnsupported,
}

func apiErrorCode(err error) string {
	var coded interface{ ErrorCode() string }
	if errors.As(err, &coded) {
		return coded.ErrorCode()
	}
	return ""
}

// httpStatus finds an HTTP status code in an error chain: a method (AWS SDK),
// a StatusCode field (most rclone backends' own error types), or the status
// line in the message (rclone's generic REST and HTTP errors).
func httpStatus(err error) int {
	for e := range walkErrors(err) {
		if s, ok := e.(interface{ HTTPStatusCode() int }); ok && s.HTTPStatusCode() != 0 {
			return s.HTTPStatusCode()
		}
		if code := statusField(e); code != 0 {
			return code
		}
	}
	return statusInMessage(err.Error())
}

func statusField(e error) int {
	v := reflect.ValueOf(e)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return 0
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return 0
	}
	for _, name := range []string{"StatusCode", "HTTPStatusCode"} {
		f := v.FieldByName(name)
		if f.IsValid() && f.CanInt() && f.Int() >= 100 && f.Int() <= 599 {
			return int(f.Int())
		}
	}
	return 0
}

var statusRE = regexp.MustCompile(`(?i)(?:\bhttp(?: error)?|\bstatus(?: code)?)[:= ]+([1-5][0-9][0-9])\b|\b([1-5][0-9][0-9]) ([A-Z][A-Za-z -]+)`)

func statusInMessage(msg string) int {
	for _, m := range statusRE.FindAllStringSubmatch(msg, -1) {
		if m[1] != "" {
			code, _ := strconv.Atoi(m[1])
			return code
		}
		// "404 Not Found" only counts when the text is the real reason phrase.
		code, _ := strconv.Atoi(m[2])
		if text := http.StatusText(code); text != "" && strings.HasPrefix(m[3], text) {
			return code
		}
	}
	return 0
}

// walkErrors yields every error in the chain, following Unwrap() error and
// Unwrap() []error.
func walkErrors(err error) func(func(error) bool) {
	return func(yield func(error) bool) {
		stack := []error{err}
		for len(stack) > 0 {
			e := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if e == nil {
				continue
			}
			if !yield(e) {
				return
			}
			switch u := e.(type) {
			case interface{ Unwrap() error }:
				stack = append(stack, u.Unwrap())
			case interface{ Unwrap() []error }:
				errs := u.Unwrap()
				for i := len(errs) - 1; i >= 0; i-- {
					stack = append(stack, errs[i])
				}
			}
		}
	}
}

// Phrases for errors that reach us only as text (flattened with %v by a
// backend or a server's free-form reply).
var messageKinds = []struct {
	kind    Kind
	phrases []string
}{
	{KindUnreachable, []string{"connection refused", "no route to host", "network is unreachable", "no such host", "host is down"}},
	{KindQuota, []string{"quota", "insufficient storage", "no space left", "disk full", "not enough space", "storage limit"}},
	{KindAuth, []string{"unable to authenticate", "authentication failed", "permission denied", "access denied",
		"login incorrect", "login authentication failed", "unauthorized", "forbidden", "invalid credentials"}},
	{KindNotFound, []string{"no such file", "not found", "does not exist"}},
	{KindTransient, []string{"connection reset", "broken pipe", "timeout", "timed out", "temporarily unavailable",
		"too many requests", "try again", "unexpected eof", "connection lost", "server closed",
		// rclone's check after an upload: the server kept another size than
		// was sent (seen with FTP servers under load: a data connection cut
		// short). The upload failed; sending it again is the remedy.
		"sizes differ"}},
}

func messageKind(err error) (Kind, bool) {
	msg := strings.ToLower(err.Error())
	for _, mk := range messageKinds {
		for _, p := range mk.phrases {
			if strings.Contains(msg, p) {
				return mk.kind, true
			}
		}
	}
	return 0, false
}

func transientKind(err error) (Kind, bool) {
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return KindTransient, true
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ETIMEDOUT) {
		return KindTransient, true
	}
	if fserrors.IsRetryError(err) || fserrors.IsRetryAfterError(err) || fserrors.ShouldRetry(err) {
		if fserrors.IsNoRetryError(err) || fserrors.IsFatalError(err) {
			return KindFatal, true
		}
		return KindTransient, true
	}
	return 0, false
}
