package storage

import (
	"context"
	"errors"
	"time"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/fspath"
)

// uploadCleanupTypes are the backends whose "cleanup" command aborts the
// incomplete multipart uploads under the backend's root, taking a max-age.
// b2 and oracleobjectstorage have a command of that name and meaning too,
// but no test server here checks them.
var uploadCleanupTypes = map[string]bool{"s3": true}

// AbortIncompleteUploads aborts the multipart uploads under dir that were
// started more than olderThan ago (by the server's clock) and never
// completed. A process killed mid-upload leaves one behind on S3: its parts
// are stored (and billed) until aborted, and some servers (rclone serve s3)
// show them as temporary objects next to the real ones. Uploads elsewhere
// on the relay are not touched. A no-op on backends without such uploads.
//
// The caller must know that no upload under dir is still in flight, or pass
// an olderThan longer than any upload can last.
func (r *Relay) AbortIncompleteUploads(ctx context.Context, dir string, olderThan time.Duration) error {
	const op = "abort incomplete uploads"
	// The relay root is refused: it would reach every client's uploads.
	if err := r.check(op, false, dir); err != nil {
		return err
	}
	if !uploadCleanupTypes[r.features.Type] {
		return nil
	}
	return r.do(ctx, call{op: op, name: dir, timeout: r.cfg.dataTimeout}, func(actx context.Context) error {
		// The command works on a backend's whole root, so it runs on a
		// backend rooted at dir. The trailing slash says dir is a folder
		// (no request to check it is not a file); rclone's cache keeps the
		// backend for the next sweep.
		sub, err := getFs(actx, fspath.JoinRootPath(r.spec.fsString, dir)+"/")
		if err != nil {
			return err
		}
		command := sub.Features().Command
		if command == nil {
			return errors.New("the backend has no cleanup command")
		}
		// The s3 backend lists the uploads under its root and aborts each
		// older than max-age; a failed abort is only logged (the next sweep
		// tries again), a failed listing is returned.
		_, err = command(actx, "cleanup", nil, map[string]string{"max-age": olderThan.String()})
		if errors.Is(err, fs.ErrorCommandNotFound) {
			return &Error{Op: op, Name: dir, Kind: KindUnsupported, Err: err}
		}
		return err
	})
}
