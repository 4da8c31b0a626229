package daemon

import (
	"log/slog"
	"path/filepath"

	"github.com/escale-sync/escale/pkg/config"
	"github.com/escale-sync/escale/pkg/localfs"
)

// cleanTemps removes the temp files that an escale killed mid-write (kill -9,
// power loss) left in the folder, where the user would see them and other
// tools would sync them. It runs right after the engine opened the
// repository's state, which only one process can hold, and before any round:
// every temp file there then belongs to a process that is gone, so none is
// spared for its age.
func cleanTemps(cfg *config.Config, r *config.Repository, log *slog.Logger) {
	f, err := localfs.OpenFolder(r.Path, localfs.Options{TrashDir: filepath.Join(cfg.StateDir, r.Name, "trash")})
	if err != nil {
		return // the round reports a missing or unreadable folder itself
	}
	defer f.Close()
	if log == nil {
		log = slog.Default()
	}
	n, err := f.CleanTemps(0)
	if n > 0 {
		log.Info("removed temp files left by an interrupted run", "count", n)
	}
	if err != nil {
		log.Warn("could not remove every temp file left by an interrupted run", "err", err)
	}
}
