// Package logging builds escale's slog logger: text on a terminal, JSON on
// request, optionally into a rotated file.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Options describe where and how to log.
type Options struct {
	Level  string // debug, info, warn, error; "" = info
	Format string // text or json; "" = text
	File   string // log into this file instead of Stderr
	// Rotation of File (lumberjack): MaxSizeMB 0 = no rotation.
	MaxSizeMB  int
	MaxBackups int
	MaxAgeDays int
	Compress   bool
	Stderr     io.Writer
}

// ParseLevel maps a level name to slog's level.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: use debug, info, warn or error", s)
}

// New returns the logger and a closer for the log file (a no-op without one).
func New(o Options) (*slog.Logger, func() error, error) {
	level, err := ParseLevel(o.Level)
	if err != nil {
		return nil, nil, err
	}
	var w io.Writer = o.Stderr
	if w == nil {
		w = os.Stderr
	}
	closer := func() error { return nil }
	if o.File != "" {
		if err := os.MkdirAll(filepath.Dir(o.File), 0o755); err != nil {
			return nil, nil, fmt.Errorf("log file %s: %w", o.File, err)
		}
		if o.MaxSizeMB > 0 {
			lj := &lumberjack.Logger{Filename: o.File, MaxSize: o.MaxSizeMB, MaxBackups: o.MaxBackups, MaxAge: o.MaxAgeDays, Compress: o.Compress}
			w, closer = lj, lj.Close
		} else {
			f, err := os.OpenFile(o.File, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return nil, nil, fmt.Errorf("log file: %w", err)
			}
			w, closer = f, f.Close
		}
	}
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch strings.ToLower(o.Format) {
	case "", "text":
		h = slog.NewTextHandler(w, hopts)
	case "json":
		h = slog.NewJSONHandler(w, hopts)
	default:
		return nil, nil, fmt.Errorf("log format %q: use text or json", o.Format)
	}
	return slog.New(h), closer, nil
}
