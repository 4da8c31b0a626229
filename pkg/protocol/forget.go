package protocol

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/escale-sync/escale/pkg/storage"
)

// ForgetClient deletes every relay object of the client called name: its
// records, its pending updates and their data, and its heads. It is the one
// exception to the single-writer layout (§2), for a client that will never
// run again — typically one removed from the keys, whose records sealed with
// an old key epoch would keep that epoch alive. Its updates that others have
// not pulled yet are lost. The caller holds the "keys" lock.
func (r *Repo) ForgetClient(ctx context.Context, name string) (int, error) {
	cid := r.CID(name)
	var names []string
	if err := r.Relay.Walk(ctx, ClientDir(cid), func(e storage.Entry) error {
		if !e.IsDir {
			names = append(names, e.Name)
		}
		return nil
	}); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return 0, fmt.Errorf("list the objects of client %s: %w", name, err)
	}
	heads, err := r.Relay.List(ctx, HeadsDir)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return 0, fmt.Errorf("list heads: %w", err)
	}
	for _, h := range heads {
		if strings.HasPrefix(path.Base(h.Name), cid+".") {
			names = append(names, h.Name)
		}
	}
	n := 0
	for _, obj := range names {
		if err := r.Relay.Delete(ctx, obj); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return n, fmt.Errorf("forget client %s: delete %s: %w", name, obj, err)
		}
		n++
	}
	return n, nil
}
