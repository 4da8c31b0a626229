//go:build !unix

package main

import "os"

// peakRSS is not measured here (the harness runs on Linux).
func peakRSS(*os.ProcessState) int64 { return 0 }
