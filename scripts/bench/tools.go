package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// tools are the two binaries compared: escale built from this tree, and the
// rclone command line of the very version escale embeds.
type tools struct {
	escale, rclone string
	rcloneVersion  string
}

// repoRoot finds the escale module from the working directory up, so the
// harness runs from the repository root (make) or from scripts/bench (go test).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/escale-sync/escale\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("escale's go.mod not found above the working directory: run from the repository")
		}
		dir = parent
	}
}

// rcloneVersionOf reads the rclone requirement from go.mod.
func rcloneVersionOf(root string) (string, error) {
	f, err := os.Open(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "github.com/rclone/rclone" {
			return fields[1], nil
		}
	}
	return "", errors.New("go.mod requires no github.com/rclone/rclone")
}

func cacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find a cache folder (set XDG_CACHE_HOME): %w", err)
	}
	dir := filepath.Join(base, "escale-bench")
	return dir, os.MkdirAll(dir, 0o755)
}

// buildTools builds escale into work and rclone (once, cached by version)
// in a throwaway module, so the repository's go.mod is never touched.
func buildTools(ctx context.Context, root, work, prebuilt string, logf func(string, ...any)) (*tools, error) {
	t := &tools{escale: filepath.Join(work, "escale")}
	if prebuilt != "" {
		abs, err := filepath.Abs(prebuilt)
		if err != nil {
			return nil, err
		}
		t.escale = abs
	} else {
		logf("building escale")
		if err := goCmd(ctx, root, nil, "build", "-o", t.escale, "./cmd/escale"); err != nil {
			return nil, fmt.Errorf("build escale: %w", err)
		}
	}
	// escale runs from a plain copy, as an installed binary would: a file
	// fresh from the linker sat in the page cache so that the same program
	// measured up to 17 MB more peak RSS (docs/BENCHMARKS.md).
	run := filepath.Join(work, "escale-run")
	if err := copyFile(t.escale, run); err != nil {
		return nil, fmt.Errorf("copy escale: %w", err)
	}
	t.escale = run
	ver, err := rcloneVersionOf(root)
	if err != nil {
		return nil, err
	}
	t.rcloneVersion = ver
	cache, err := cacheDir()
	if err != nil {
		return nil, err
	}
	t.rclone = filepath.Join(cache, "rclone-"+ver)
	if _, err := os.Stat(t.rclone); err == nil {
		return t, nil
	}
	logf("building rclone %s (first time only; cached in %s)", ver, cache)
	mod, err := os.MkdirTemp(cache, "rclone-mod-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(mod)
	env := []string{"GOFLAGS=-mod=mod"}
	if err := goCmd(ctx, mod, env, "mod", "init", "escale-bench-rclone"); err != nil {
		return nil, err
	}
	if err := goCmd(ctx, mod, env, "get", "github.com/rclone/rclone@"+ver); err != nil {
		return nil, fmt.Errorf("fetch rclone %s (is the Go module proxy reachable?): %w", ver, err)
	}
	tmp := t.rclone + ".tmp"
	if err := goCmd(ctx, mod, env, "build", "-o", tmp, "github.com/rclone/rclone"); err != nil {
		return nil, fmt.Errorf("build rclone %s: %w", ver, err)
	}
	return t, os.Rename(tmp, t.rclone)
}

func goCmd(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(scrubbedEnv(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// scrubbedEnv keeps a developer's rclone and escale settings out of every
// measured process.
func scrubbedEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RCLONE_") && !strings.HasPrefix(kv, "ESCALE_") {
			env = append(env, kv)
		}
	}
	return env
}

// proc is what one measured process cost.
type proc struct {
	Wall time.Duration
	CPU  time.Duration // user + system
	RSS  int64         // peak resident set, bytes
	Out  string        // standard output
}

// run starts a process and measures it from its own rusage: CPU seconds
// and peak RSS of that process alone.
func run(ctx context.Context, env []string, name string, args ...string) (proc, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(scrubbedEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	p := proc{Wall: time.Since(start), Out: stdout.String()}
	if st := cmd.ProcessState; st != nil {
		p.CPU = st.UserTime() + st.SystemTime()
		p.RSS = peakRSS(st)
	}
	if err != nil {
		return p, fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(name), strings.Join(args, " "), err, tail(stdout.String()), tail(stderr.String()))
	}
	return p, nil
}

func tail(s string) string {
	if len(s) > 4000 {
		s = "…" + s[len(s)-4000:]
	}
	return s
}

// onceLine is escale sync --once's summary of a repository.
var onceLine = regexp.MustCompile(`: pulled (\d+), deleted (\d+), pushed (\d+), conflicts (\d+), (\d+) bytes up, (\d+) down`)

// escaleBytes reads the bytes escale says it sent and fetched.
func escaleBytes(out string) (up, down int64) {
	m := onceLine.FindStringSubmatch(out)
	if m == nil {
		return 0, 0
	}
	up, _ = strconv.ParseInt(m[5], 10, 64)
	down, _ = strconv.ParseInt(m[6], 10, 64)
	return up, down
}

// copyFile copies the executable src to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
