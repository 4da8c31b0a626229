package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"
)

// sample is one measured pair (push then pull) of one tool, or one process
// for the idle and scan workloads.
type sample struct {
	Wall, CPU time.Duration
	RSS       int64 // the larger of the processes' peaks
	Tally     tally
	Stored    int64 // bytes in the relay folder after the push
	Sent      int64 // bytes the pushing side says it sent (escale) or had to (floor)
	Plain     int64 // plaintext bytes of the workload (or of the change)
	Polls     int   // processes in the sample, for per-poll figures
}

// row is one tool on one relay over the runs; Ratios[i] pairs Samples[i]
// with the floor's sample of the same run.
type row struct {
	Relay, Tool string
	Samples     []sample
	Ratios      []float64
}

type table struct {
	Workload string
	Title    string
	Data     string // what was generated
	Rows     []*row
	Notes    []string
}

// spread is median and min–max.
type spread struct{ med, lo, hi float64 }

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{m, s[0], s[len(s)-1]}
}

func (s spread) format(unit string, prec int) string {
	if s.lo == s.hi {
		return fmt.Sprintf("%.*f%s", prec, s.med, unit)
	}
	return fmt.Sprintf("%.*f%s (%.*f–%.*f)", prec, s.med, unit, prec, s.lo, prec, s.hi)
}

func (r *row) each(f func(sample) float64) spread {
	v := make([]float64, len(r.Samples))
	for i, s := range r.Samples {
		v[i] = f(s)
	}
	return spreadOf(v)
}

func (t *table) markdown(w io.Writer) {
	fmt.Fprintf(w, "### %s\n\n", t.Title)
	if t.Data != "" {
		fmt.Fprintf(w, "%s\n\n", t.Data)
	}
	fmt.Fprintln(w, "| relay | tool | runs | wall s | ratio to floor | requests | wire MB | stored ÷ plain | sent ÷ plain | peak RSS MB | CPU s |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range t.Rows {
		if len(r.Samples) == 0 {
			continue
		}
		ratio := "—"
		if len(r.Ratios) > 0 {
			ratio = "**" + spreadOf(r.Ratios).format("×", 2) + "**"
		}
		req := "—"
		if last := r.Samples[len(r.Samples)-1].Tally; last.Requests != nil {
			req = fmt.Sprintf("%s: %s", r.each(func(s sample) float64 { return float64(s.Tally.total()) }).format("", 0), last.kinds())
		} else if last.Conns > 0 {
			req = fmt.Sprintf("%d TCP conns (SSH hides requests)", last.Conns)
		}
		wire := "—"
		if r.Samples[0].Tally.Wire > 0 {
			wire = r.each(func(s sample) float64 { return float64(s.Tally.Wire) / 1e6 }).format("", 1)
		}
		ratioOf := func(f func(sample) int64) string {
			if r.Samples[0].Plain == 0 || f(r.Samples[0]) == 0 {
				return "—"
			}
			return r.each(func(s sample) float64 { return float64(f(s)) / float64(s.Plain) }).format("", 3)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.Relay, r.Tool, len(r.Samples),
			r.each(func(s sample) float64 { return s.Wall.Seconds() }).format("", 2),
			ratio, req, wire,
			ratioOf(func(s sample) int64 { return s.Stored }),
			ratioOf(func(s sample) int64 { return s.Sent }),
			r.each(func(s sample) float64 { return float64(s.RSS) / 1e6 }).format("", 0),
			r.each(func(s sample) float64 { return s.CPU.Seconds() }).format("", 2))
	}
	fmt.Fprintln(w)
	for _, n := range t.Notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	if len(t.Notes) > 0 {
		fmt.Fprintln(w)
	}
}

// machine describes where the figures come from.
func machine(t *tools, sizes string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- date: %s; sizes: %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), sizes)
	fmt.Fprintf(&b, "- %d cores (%s), %s memory; %s\n", runtime.NumCPU(), cpuModel(), memTotal(), kernel())
	fmt.Fprintf(&b, "- %s; rclone %s (the version escale embeds, built from the same module)\n", runtime.Version(), t.rcloneVersion)
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "- load average at the start: %s\n", strings.Join(strings.Fields(string(load))[:3], " "))
	}
	return b.String()
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	var kb int64
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			fmt.Sscanf(strings.TrimPrefix(l, "MemTotal:"), "%d", &kb)
		}
	}
	return fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
}

func kernel() string {
	out, err := exec.Command("uname", "-sr").Output()
	if err != nil {
		return runtime.GOOS
	}
	return strings.TrimSpace(string(out))
}
