package testserver

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
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

// launch is one way to start a server process.
type launch struct {
	attr *syscall.SysProcAttr
	// viaInit runs the server under a shell that stays its parent: as the
	// first process of a PID namespace vsftpd loses its listener after a
	// session (about one start in eight), as a shell's child it does not.
	viaInit bool
}

// startProcess runs bin with args, output going to a file in dir.
func startProcess(name, dir, bin string, args []string, logs ...string) (*process, error) {
	outPath := filepath.Join(dir, name+".out")
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create %s output file: %w", name, err)
	}
	defer out.Close() // the child holds its own descriptor
	p := &process{name: name, out: outPath, logs: logs, done: make(chan struct{})}
	started := make(chan error, 1)
	// Linux sends Pdeathsig when the *thread* that started the child exits,
	// and Go may end threads while the process lives on: start and wait on
	// a thread kept for this server alone until it exits.
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the server
		defer close(p.done)
		var err error
		for _, l := range launches() {
			if l.viaInit {
				p.cmd = exec.Command("/bin/sh", append([]string{"-c", `"$0" "$@" & wait $!`, bin}, args...)...)
			} else {
				p.cmd = exec.Command(bin, args...)
			}
			p.cmd.Dir = dir
			p.cmd.Stdout, p.cmd.Stderr = out, out
			p.cmd.SysProcAttr = l.attr
			if err = p.cmd.Start(); err == nil {
				break
			}
		}
		started <- err
		if err == nil {
			p.err = p.cmd.Wait()
		}
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
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

// waitReady waits until addr answers with want, a token unique to this
// server put in its greeting (or, after send, in its reply): a greeting
// alone could come from another server that took the port first. It fails
// early, with the server's output, if the process exits.
func (p *process) waitReady(addr, send, want string) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before listening on %s (%v)%s", p.name, addr, p.err, p.tail())
		default:
		}
		if last = probe(addr, send, want); last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer on %s within %s: %v%s", p.name, addr, readyTimeout, last, p.tail())
}

// probe connects to addr, writes send and reads until want shows up.
func probe(addr, send, want string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if send != "" {
		if _, err := io.WriteString(c, send); err != nil {
			return err
		}
	}
	var got []byte
	buf := make([]byte, 4096)
	for len(got) < 64<<10 {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if bytes.Contains(got, []byte(want)) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("answer %q lacks this server's token %q (%v)", got, want, err)
		}
	}
	return fmt.Errorf("answer lacks this server's token %q", want)
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
// arguments; the server must answer send with a reply holding want (see
// waitReady).
func runProcess(name, dir, bin, send, want string, build func(port int) ([]string, error), logs ...string) (p *process, addr string, err error) {
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
		if err = p.waitReady(addr, send, want); err != nil {
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
