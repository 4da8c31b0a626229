package testserver

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Bounds on waiting for a child server. Generous, because a loaded CI
// machine can be slow; they only bite when something is broken.
const (
	readyTimeout = 20 * time.Second
	stopTimeout  = 10 * time.Second
)

// process is a server running as a child process in its own process group
// (and PID namespace where allowed, see procAttrs), so stopping it also
// stops the workers it forked.
type process struct {
	name string
	cmd  *exec.Cmd
	out  string        // file holding its stdout and stderr
	logs []string      // more log files it writes, shown when it fails
	done chan struct{} // closed once it has exited
	err  error         // its exit status, valid after done
}

// startProcess runs bin with args, output going to a file in dir.
func startProcess(name, dir, bin string, args []string, logs ...string) (*process, error) {
	outPath := filepath.Join(dir, name+".out")
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create %s output file: %w", name, err)
	}
	defer out.Close() // the child holds its own descriptor
	var cmd *exec.Cmd
	for _, attr := range procAttrs() {
		cmd = exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = attr
		if err = cmd.Start(); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{name: name, cmd: cmd, out: outPath, logs: logs, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop kills the server with everything it forked. Tests need no graceful
// shutdown: what the server wrote is in the kernel's hands already.
func (p *process) stop() {
	killGroup(p.cmd.Process)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		// Unkillable (stuck in the kernel): nothing more a test can do.
	}
}

// waitReady waits until addr accepts connections and, when banner is set,
// greets with it. It fails early, with the server's output, if the process
// exits.
func (p *process) waitReady(addr, banner string) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before listening on %s (%v)%s", p.name, addr, p.err, p.tail())
		default:
		}
		if last = probe(addr, banner); last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer on %s within %s: %v%s", p.name, addr, readyTimeout, last, p.tail())
}

// probe connects to addr and checks the greeting starts with banner.
func probe(addr, banner string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if banner == "" {
		return nil
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, len(banner))
	n, err := c.Read(buf)
	for err == nil && n < len(buf) {
		var m int
		m, err = c.Read(buf[n:])
		n += m
	}
	if !bytes.Equal(buf[:n], []byte(banner)) {
		return fmt.Errorf("greeting %q, want %q (read error: %v)", buf[:n], banner, err)
	}
	return nil
}

// tail returns the end of the server's output and logs, for error messages.
func (p *process) tail() string {
	var b strings.Builder
	for _, f := range append([]string{p.out}, p.logs...) {
		data, err := os.ReadFile(f)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		if len(data) > 2000 {
			data = data[len(data)-2000:]
		}
		fmt.Fprintf(&b, "\n--- %s:\n%s", f, bytes.TrimSpace(data))
	}
	return b.String()
}

// runProcess starts a server on a free port, retrying when the port was
// taken in between. build writes the config for a port and returns the
// arguments; banner is what the server greets with, if anything.
func runProcess(name, dir, bin, banner string, build func(port int) ([]string, error), logs ...string) (p *process, addr string, err error) {
	err = onFreePort(func(port int) error {
		args, err := build(port)
		if err != nil {
			return err
		}
		p, err = startProcess(name, dir, bin, args, logs...)
		if err != nil {
			return err
		}
		addr = hostPort(port)
		if err = p.waitReady(addr, banner); err != nil {
			p.stop()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return p, addr, nil
}
