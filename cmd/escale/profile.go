package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// startProfiles honours ESCALE_CPUPROFILE, ESCALE_MEMPROFILE and
// ESCALE_TRACE (file names; the last an execution trace, whose blocking
// profiles `go tool trace -pprof=net|sync|syscall` shows where a transfer
// waits), for benchmarks and performance work; it returns the function that
// writes them out.
func startProfiles() func() {
	var stops []func()
	if p := os.Getenv("ESCALE_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		} else {
			fmt.Fprintf(os.Stderr, "escale: cpu profile %s: %v\n", p, err)
		}
	}
	if p := os.Getenv("ESCALE_TRACE"); p != "" {
		f, err := os.Create(p)
		if err == nil && trace.Start(f) == nil {
			stops = append(stops, func() { trace.Stop(); f.Close() })
		} else {
			fmt.Fprintf(os.Stderr, "escale: execution trace %s: %v\n", p, err)
		}
	}
	if p := os.Getenv("ESCALE_MEMPROFILE"); p != "" {
		stops = append(stops, func() {
			f, err := os.Create(p)
			if err != nil {
				fmt.Fprintf(os.Stderr, "escale: memory profile %s: %v\n", p, err)
				return
			}
			defer f.Close()
			runtime.GC()
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
		})
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
