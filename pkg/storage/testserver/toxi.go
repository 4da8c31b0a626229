package testserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Proxied is a server reached through an in-process toxiproxy proxy on
// 127.0.0.1, so tests can inject network faults (latency, cut connections,
// silence) between escale and a real server.
type Proxied struct {
	// Server's Spec and Addr point at the proxy; Dir and Name are the
	// upstream server's. Stop stops the proxy only.
	*Server
	// Upstream is the real server behind the proxy.
	Upstream *Server
	// Proxy is the toxiproxy handle: Proxy.Toxics for toxics, Proxy.Stop to
	// take the proxy down (connections are then refused).
	Proxy *toxiproxy.Proxy
}

// Toxiproxy puts a toxiproxy proxy in front of s and returns a server whose
// spec goes through it. It works for specs that name the server by URL
// (webdav, s3) or by host and port (sftp, ftp; FTP's passive data
// connections bypass the proxy). For sftp the pinned host key is re-pinned
// for the proxy's address. The proxy stops when the test ends.
func Toxiproxy(t testing.TB, s *Server) *Proxied {
	t.Helper()
	// Its own API server (never listening): the proxy only needs it for
	// metrics and a logger; toxiproxy's log is noise in test output.
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	proxy := toxiproxy.NewProxy(api, "escale-"+s.Name, "127.0.0.1:0", s.Addr)
	if err := proxy.Start(); err != nil {
		t.Fatalf("start toxiproxy in front of %s: %v", s.Name, err)
	}
	addr := proxy.Listen // the port the proxy got
	var once sync.Once
	stop := func() { once.Do(proxy.Stop) }
	t.Cleanup(stop)
	spec, err := proxiedSpec(t, s.Spec, s.Addr, addr)
	if err != nil {
		t.Fatalf("point %s's spec at toxiproxy: %v", s.Name, err)
	}
	return &Proxied{
		Server:   &Server{Name: s.Name, Spec: spec, Dir: s.Dir, Addr: addr, Stop: stop},
		Upstream: s,
		Proxy:    proxy,
	}
}

// AddToxic adds a toxic of type typ ("latency", "limit_data", "timeout",
// "reset_peer", ...) on stream ("upstream": client to server, or
// "downstream") with toxiproxy's JSON attributes. Existing connections get it
// too.
func (p *Proxied) AddToxic(t testing.TB, name, typ, stream string, attrs map[string]any) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "attributes": attrs})
	if err != nil {
		t.Fatalf("encode toxic %s: %v", name, err)
	}
	if _, err := p.Proxy.Toxics.AddToxicJson(strings.NewReader(string(body))); err != nil {
		t.Fatalf("add toxic %s (%s) to the proxy: %v", name, body, err)
	}
}

// RemoveToxic removes the toxic name; it is safe to call from any goroutine.
func (p *Proxied) RemoveToxic(t testing.TB, name string) {
	if err := p.Proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
		t.Errorf("remove toxic %s from the proxy: %v", name, err)
	}
}

var knownHostsOpt = regexp.MustCompile(`,known_hosts_file=('(?:[^']|'')*'|[^,:]*)`)

// proxiedSpec rewrites spec so it reaches the server at to instead of from.
func proxiedSpec(t testing.TB, spec, from, to string) (string, error) {
	if strings.Contains(spec, from) { // url=..., endpoint=...
		return strings.ReplaceAll(spec, from, to), nil
	}
	fromHost, fromPort, err := net.SplitHostPort(from)
	if err != nil {
		return "", err
	}
	_, toPort, err := net.SplitHostPort(to)
	if err != nil {
		return "", err
	}
	hostPort := ",host=" + fromHost + ",port=" + fromPort + ","
	if !strings.Contains(spec, hostPort) {
		return "", fmt.Errorf("spec names the server neither as %s nor as host and port", from)
	}
	spec = strings.Replace(spec, hostPort, ",host="+fromHost+",port="+toPort+",", 1)
	m := knownHostsOpt.FindStringSubmatch(spec)
	if m == nil {
		return spec, nil
	}
	// The known_hosts line names the address ("[127.0.0.1]:port"): pin the
	// same host key for the proxy's.
	path := m[1]
	if strings.HasPrefix(path, "'") {
		path = strings.ReplaceAll(path[1:len(path)-1], "''", "'")
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read known_hosts: %w", err)
	}
	oldName, newName := "["+fromHost+"]:"+fromPort, "["+fromHost+"]:"+toPort
	if !strings.Contains(string(text), oldName) {
		return "", fmt.Errorf("known_hosts %s has no line for %s", path, oldName)
	}
	newPath := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(newPath, []byte(strings.ReplaceAll(string(text), oldName, newName)), 0o644); err != nil {
		return "", fmt.Errorf("write known_hosts for the proxy: %w", err)
	}
	return strings.Replace(spec, m[0], ",known_hosts_file="+quoteValue(newPath), 1), nil
}
