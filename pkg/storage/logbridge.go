package storage

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/rclone/rclone/fs"
)

// logBridge is the slog.Handler installed as rclone's own logger (fs.SetLogger):
// rclone's records are re-levelled and handed to escale's logger. It is the
// hook rclone documents for library use; rclone's fs/log OutputHandler (text
// formatting, syslog, files) is bypassed entirely.
type logBridge struct {
	target atomic.Pointer[slog.Logger] // nil: whatever slog.Default() is at the time
	ops    []func(slog.Handler) slog.Handler
	root   *logBridge // the bridge whose target is used; itself for the root
}

func newLogBridge() *logBridge {
	b := &logBridge{}
	b.root = b
	return b
}

func (b *logBridge) setTarget(l *slog.Logger) { b.root.target.Store(l) }

// escaleLogger is the logger given to Init (or slog.Default()).
func escaleLogger() *slog.Logger {
	if l := bridge.target.Load(); l != nil {
		return l
	}
	return slog.Default()
}

func (b *logBridge) handler() slog.Handler {
	l := b.root.target.Load()
	if l == nil {
		l = slog.Default()
	}
	h := l.Handler()
	for _, op := range b.ops {
		h = op(h)
	}
	return h
}

// rcloneLevel maps rclone's levels onto slog's four: rclone's ERROR goes to
// warn because every rclone error that matters comes back to escale as a
// returned error too, and escale decides how bad it is (often it retries).
func rcloneLevel(l slog.Level) slog.Level {
	switch {
	case l < slog.LevelInfo:
		return slog.LevelDebug
	case l < slog.LevelWarn: // INFO, NOTICE
		return slog.LevelInfo
	case l < fs.SlogLevelCritical: // WARNING, ERROR
		return slog.LevelWarn
	default: // CRITICAL, ALERT, EMERGENCY
		return slog.LevelError
	}
}

func (b *logBridge) Enabled(ctx context.Context, l slog.Level) bool {
	return b.handler().Enabled(ctx, rcloneLevel(l))
}

func (b *logBridge) Handle(ctx context.Context, r slog.Record) error {
	level := rcloneLevel(r.Level)
	// librclone traces every RPC with its parameters, which for config/create
	// include credentials: never pass those on.
	if level == slog.LevelDebug && strings.HasPrefix(r.Message, "rc: ") {
		return nil
	}
	h := b.handler()
	if !h.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, strings.TrimSuffix(r.Message, "\n"), r.PC)
	out.AddAttrs(slog.String("component", "rclone"))
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "objectType" { // Go type names are noise for escale's users
			out.AddAttrs(a)
		}
		return true
	})
	return h.Handle(ctx, out)
}

func (b *logBridge) derive(op func(slog.Handler) slog.Handler) *logBridge {
	return &logBridge{root: b.root, ops: append(append([]func(slog.Handler) slog.Handler(nil), b.ops...), op)}
}

func (b *logBridge) WithAttrs(attrs []slog.Attr) slog.Handler {
	return b.derive(func(h slog.Handler) slog.Handler { return h.WithAttrs(attrs) })
}

func (b *logBridge) WithGroup(name string) slog.Handler {
	return b.derive(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}

// rcloneLogLevel is the level rclone itself filters at (before the bridge):
// DEBUG when escale's logger wants debug, else NOTICE. rclone's INFO lines are
// one per transfer, which escale reports itself, so they only appear when
// escale logs at debug.
func rcloneLogLevel(l *slog.Logger) fs.LogLevel {
	if l == nil {
		l = slog.Default()
	}
	if l.Enabled(context.Background(), slog.LevelDebug) {
		return fs.LogLevelDebug
	}
	return fs.LogLevelNotice
}
