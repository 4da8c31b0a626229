//go:build race

package testserver

// raceDetector is set when the tests run under the race detector.
const raceDetector = true
