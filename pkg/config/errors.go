package config

import (
	"fmt"
	"io/fs"
	"strings"
)

// Problem is one thing wrong in a configuration. Its message names where
// (file, and key or line), and what is expected.
type Problem struct {
	// File is the configuration file, or "environment" for an ESCALE_ variable.
	File string
	// Key is the dotted key ("repository.work.quota", "log_level") or the
	// variable name ("ESCALE_LOG_LEVEL"); empty for a file-wide problem.
	Key string
	// Line and Column are 1-based positions, known for syntax errors only.
	Line, Column int
	// Msg says what is wrong and what is expected.
	Msg string
}

// String formats the problem as "file:line:col: msg" or "file: key: msg".
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// ValidationError lists every problem found in a configuration, not just
// the first, so that one edit fixes them all.
type ValidationError struct {
	Problems []Problem
}

// Error joins the problems, one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// NotFoundError reports that no configuration file exists where escale
// looked. It matches errors.Is(err, fs.ErrNotExist).
type NotFoundError struct {
	// Searched lists the places looked at, in order.
	Searched []string
	// Explicit is set when the file was named (--config or ESCALE_CONFIG),
	// in which case escale does not fall back to the default places.
	Explicit bool
}

func (e *NotFoundError) Error() string {
	if e.Explicit {
		return fmt.Sprintf("configuration file %s does not exist; check --config or $ESCALE_CONFIG, or run `escale --config %s init` to write one", e.Searched[0], e.Searched[0])
	}
	return fmt.Sprintf("no configuration file found; looked in:\n  %s\nrun `escale init` to write one, or name one with --config FILE",
		strings.Join(e.Searched, "\n  "))
}

// Unwrap lets callers test for fs.ErrNotExist.
func (e *NotFoundError) Unwrap() error { return fs.ErrNotExist }
