package engine

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/escale-sync/escale/pkg/envelope"
	"github.com/escale-sync/escale/pkg/protocol"
	"github.com/escale-sync/escale/pkg/storage"
)

// RelayClient is one client as the relay shows it, decrypted (escale ls).
type RelayClient struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Mode      string    `json:"mode"`
	Published uint64    `json:"published"` // latest update
	Updates   int       `json:"updates_on_relay"`
	Objects   int       `json:"data_objects"`
	Bytes     int64     `json:"bytes"` // everything under its prefix
	Oldest    time.Time `json:"oldest_update,omitempty"`
	AckedAt   time.Time `json:"acks_written,omitempty"`
}

// RelayView is what `escale ls` shows.
type RelayView struct {
	Repository string        `json:"repository"`
	Encryption string        `json:"encryption"`
	Clients    []RelayClient `json:"clients"`
	Bytes      int64         `json:"bytes"`
}

// ViewRelay opens the repository on relay and lists its clients with their
// pending updates and sizes. It reads only and needs no local state, so it
// works while a daemon runs; the key names the clients.
func ViewRelay(ctx context.Context, relay *storage.Relay, encrypted bool, creds protocol.Credentials) (*RelayView, error) {
	repo, err := protocol.Open(ctx, relay, encrypted, creds)
	if err != nil {
		return nil, err
	}
	e := &Engine{relay: relay, repo: repo, peers: map[string]*protocol.ClientInfo{}, log: slog.Default()}
	return e.viewRelay(ctx)
}

func (e *Engine) viewRelay(ctx context.Context) (*RelayView, error) {
	v := &RelayView{Repository: e.repo.ID(), Encryption: e.repo.Marker.Encryption}
	heads, err := e.repo.ListHeads(ctx)
	if err != nil {
		return nil, err
	}
	cl, err := e.clients(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]*RelayClient{}
	for cid, info := range cl {
		byID[cid] = &RelayClient{ID: cid, Name: info.Name, Mode: info.Mode}
	}
	for _, h := range heads {
		c := byID[h.CID]
		if c == nil {
			c = &RelayClient{ID: h.CID, Name: "(unregistered)"}
			byID[h.CID] = c
		}
		if h.Manifest() {
			c.Published = max(c.Published, h.Seq)
		}
	}
	for cid, c := range byID {
		err := e.relay.Walk(ctx, protocol.ClientDir(cid), func(en storage.Entry) error {
			if en.Size > 0 {
				c.Bytes += en.Size
			}
			switch {
			case strings.Contains(en.Name, "/log/"):
				c.Updates++
				if seq, ok := protocol.ParseSeqName(path.Base(en.Name)); ok && (c.Oldest.IsZero() || en.ModTime.Before(c.Oldest)) && seq > 0 {
					c.Oldest = en.ModTime
				}
			case strings.Contains(en.Name, "/data/"):
				c.Objects++
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list client %s: %w", cid, err)
		}
		var a protocol.Acks
		if err := e.repo.GetJSON(ctx, envelope.KindAcks, protocol.AcksName(cid), protocol.MaxSmallObj, &a); err == nil {
			c.AckedAt = a.Time
		}
		v.Bytes += c.Bytes
		v.Clients = append(v.Clients, *c)
	}
	sort.Slice(v.Clients, func(i, j int) bool { return v.Clients[i].Name < v.Clients[j].Name })
	return v, nil
}
