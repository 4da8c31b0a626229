package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/ssh"
)

// relay is where both escale and the floor store: a folder on this disk,
// reached directly or through a loopback server. Every relay keeps its
// objects in Root, so relay bytes are measured on disk for all of them.
type relay struct {
	Name string
	Root string
	// spec is the rclone/escale remote for the folder sub of Root.
	spec func(sub string) string
	// count is nil for the local folder: nothing goes over a wire.
	count *counter
}

// counter tallies what crosses the wire between the clients and a server:
// TCP payload bytes both ways, connections, and for WebDAV each request
// by method (SFTP's requests are inside SSH's encryption).
type counter struct {
	wire, conns atomic.Int64
	mu          sync.Mutex
	methods     map[string]int
	trace       io.Writer // each WebDAV request's method and path, when asked
}

type tally struct {
	Wire, Conns int64
	Requests    map[string]int // nil when the protocol hides them
}

func (t tally) total() int {
	n := 0
	for _, v := range t.Requests {
		n += v
	}
	return n
}

func (t tally) kinds() string {
	if t.Requests == nil {
		return ""
	}
	var ks []string
	for k := range t.Requests {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	for _, k := range ks {
		fmt.Fprintf(&b, "%s %d ", k, t.Requests[k])
	}
	return strings.TrimSpace(b.String())
}

// take returns the tally since the last take and starts a new one.
func (c *counter) take() tally {
	if c == nil {
		return tally{}
	}
	t := tally{Wire: c.wire.Swap(0), Conns: c.conns.Swap(0)}
	c.mu.Lock()
	if c.methods != nil {
		t.Requests = c.methods
		c.methods = map[string]int{}
	}
	c.mu.Unlock()
	return t
}

type countingConn struct {
	net.Conn
	c *counter
}

func (cc countingConn) Read(p []byte) (int, error) {
	n, err := cc.Conn.Read(p)
	cc.c.wire.Add(int64(n))
	return n, err
}

func (cc countingConn) Write(p []byte) (int, error) {
	n, err := cc.Conn.Write(p)
	cc.c.wire.Add(int64(n))
	return n, err
}

type countingListener struct {
	net.Listener
	c *counter
}

func (l countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.c.conns.Add(1)
	return countingConn{conn, l.c}, nil
}

// servers are the loopback servers of one harness run and the proxies in
// front of them; close stops them all.
type servers struct {
	work   string
	rclone string
	pass   string
	stops  []func()
	toxi   *toxiproxy.ApiServer
	relays map[string]*relay
	trace  io.Writer // shared by the WebDAV counters; nil: no trace
}

// mark writes a heading into the request trace, before a measured process.
func (s *servers) mark(r *relay, what string) {
	if s.trace != nil && r.count != nil {
		r.count.mu.Lock()
		fmt.Fprintf(s.trace, "## %s on %s\n", what, r.Name)
		r.count.mu.Unlock()
	}
}

func (s *servers) close() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
}

// get returns the relay of that name, starting what it needs: "local",
// "sftp", "webdav", and either with "+50ms" (toxiproxy adds 50 ms each way).
func (s *servers) get(ctx context.Context, name string) (*relay, error) {
	if r := s.relays[name]; r != nil {
		return r, nil
	}
	kind, lat, _ := strings.Cut(name, "+")
	var latency time.Duration
	if lat != "" {
		d, err := time.ParseDuration(lat)
		if err != nil {
			return nil, fmt.Errorf("relay %q: the latency must read like +50ms: %w", name, err)
		}
		latency = d
	}
	root := filepath.Join(s.work, "relay-"+strings.NewReplacer("+", "-").Replace(name))
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	r := &relay{Name: name, Root: root}
	switch kind {
	case "local":
		if latency > 0 {
			return nil, fmt.Errorf("relay %q: latency needs a network relay (sftp, webdav)", name)
		}
		r.spec = func(sub string) string { return filepath.Join(root, sub) }
	case "sftp", "webdav":
		addr, err := s.serve(ctx, kind, root)
		if err != nil {
			return nil, err
		}
		r.count = &counter{trace: s.trace}
		front, err := s.countingProxy(kind, addr, r.count)
		if err != nil {
			return nil, err
		}
		if latency > 0 {
			if front, err = s.latencyProxy(name, front, latency); err != nil {
				return nil, err
			}
		}
		host, port, _ := net.SplitHostPort(front)
		obscured, err := s.obscure(ctx)
		if err != nil {
			return nil, err
		}
		if kind == "sftp" {
			r.spec = func(sub string) string {
				return fmt.Sprintf(":sftp,host=%s,port=%s,user=bench,pass=%s:%s", host, port, obscured, sub)
			}
		} else {
			r.spec = func(sub string) string {
				return fmt.Sprintf(":webdav,url='http://%s',vendor=rclone,user=bench,pass=%s:%s", front, obscured, sub)
			}
		}
	default:
		return nil, fmt.Errorf("unknown relay %q: use local, sftp, webdav, optionally with +LATENCY (sftp+50ms)", name)
	}
	s.relays[name] = r
	return r, nil
}

func (s *servers) obscure(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, s.rclone, "obscure", s.pass).Output()
	if err != nil {
		return "", fmt.Errorf("rclone obscure: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// serve starts `rclone serve KIND root` on a free loopback port and waits
// until it answers.
func (s *servers) serve(ctx context.Context, kind, root string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"serve", kind, root, "--addr", addr, "--user", "bench", "--pass", s.pass, "--config", "/dev/null"}
	if kind == "sftp" {
		key := filepath.Join(s.work, "sftp-host-key-"+hex.EncodeToString([]byte(root))[:8])
		if err := writeHostKey(key); err != nil {
			return "", err
		}
		args = append(args, "--key", key, "--authorized-keys", "")
	}
	logf, err := os.Create(filepath.Join(s.work, "serve-"+kind+"-"+filepath.Base(root)+".log"))
	if err != nil {
		return "", err
	}
	cmd := exec.Command(s.rclone, args...)
	cmd.Env = scrubbedEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", fmt.Errorf("start rclone serve %s: %w", kind, err)
	}
	s.stops = append(s.stops, func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("rclone serve %s did not listen on %s (see %s): %w", kind, addr, logf.Name(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countingProxy puts a counter in front of a server: an HTTP reverse proxy
// for WebDAV (counts requests by method), a TCP relay for SFTP.
func (s *servers) countingProxy(kind, upstream string, c *counter) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	cl := countingListener{ln, c}
	if kind == "webdav" {
		c.methods = map[string]int{}
		target := &url.URL{Scheme: "http", Host: upstream}
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.Transport = &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
		rp.FlushInterval = -1
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c.mu.Lock()
			c.methods[r.Method]++
			if c.trace != nil {
				fmt.Fprintf(c.trace, "%s %s\n", r.Method, r.URL.Path)
			}
			c.mu.Unlock()
			rp.ServeHTTP(w, r)
		})}
		go func() { _ = srv.Serve(cl) }()
		s.stops = append(s.stops, func() { _ = srv.Close() })
		return ln.Addr().String(), nil
	}
	done := make(chan struct{})
	go func() {
		for {
			conn, err := cl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				up, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, conn); closeWrite(up) }()
				_, _ = io.Copy(conn, up)
			}()
		}
	}()
	s.stops = append(s.stops, func() { ln.Close(); close(done) })
	return ln.Addr().String(), nil
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// latencyProxy adds latency on both directions with toxiproxy, in process.
func (s *servers) latencyProxy(name, upstream string, d time.Duration) (string, error) {
	if s.toxi == nil {
		// Its API server never listens: the proxy needs it for metrics only.
		s.toxi = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	}
	p := toxiproxy.NewProxy(s.toxi, "bench-"+name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return "", fmt.Errorf("start toxiproxy for %s: %w", name, err)
	}
	s.stops = append(s.stops, p.Stop)
	for _, stream := range []string{"upstream", "downstream"} {
		body, _ := json.Marshal(map[string]any{
			"name": "latency-" + stream, "type": "latency", "stream": stream,
			"attributes": map[string]any{"latency": d.Milliseconds()},
		})
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(string(body))); err != nil {
			return "", fmt.Errorf("add latency to %s: %w", name, err)
		}
	}
	return p.Listen, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func writeHostKey(path string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, "escale-bench")
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(block), 0o600)
}

func randomSecret() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
