package watch

import (
	"errors"
	"syscall"
)

// isLimit tells a refusal for lack of a system resource (which degrades the
// Watcher) from other errors: inotify returns ENOSPC when
// fs.inotify.max_user_watches is used up; kqueue needs an open file per
// watched path and fails with EMFILE or ENFILE.
func isLimit(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// limitAdvice names the limit behind err and says how to raise it.
func limitAdvice(err error) (limit, advice string) {
	if errors.Is(err, syscall.ENOSPC) {
		return "fs.inotify.max_user_watches",
			"raise the limit with `sudo sysctl fs.inotify.max_user_watches=1048576` " +
				"(and keep it in /etc/sysctl.d/99-escale.conf)"
	}
	return "open files",
		"raise the open-file limit (`ulimit -n`; on macOS also `sudo launchctl limit maxfiles`)"
}
