package cli

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// isTerminal says whether w is a terminal: progress is drawn only there, so
// logs, pipes and cron mail never get bar redraws.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Bar is a progress bar on a terminal and silent anywhere else. A nil *Bar
// is a valid silent bar.
type Bar struct {
	bar *progressbar.ProgressBar
}

// NewBar starts a bar drawn on w when w is a terminal: total is in bytes
// when bytes is set, else a count; -1 when unknown (a spinner).
func NewBar(w io.Writer, description string, total int64, bytes bool) *Bar {
	if !isTerminal(w) {
		return nil
	}
	return newBar(w, description, total, bytes)
}

func newBar(w io.Writer, description string, total int64, bytes bool) *Bar {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(description),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionOnCompletion(func() { io.WriteString(w, "\n") }),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowCount(),
		progressbar.OptionShowTotalBytes(true),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionUseIECUnits(true))
	}
	return &Bar{bar: progressbar.NewOptions64(total, opts...)}
}

// Add counts n more bytes (or items) done.
func (b *Bar) Add(n int64) {
	if b != nil {
		b.bar.Add64(n)
	}
}

// Describe changes the text before the bar.
func (b *Bar) Describe(description string) {
	if b != nil {
		b.bar.Describe(description)
	}
}

// Finish draws the bar complete and ends its line.
func (b *Bar) Finish() {
	if b != nil {
		b.bar.Finish()
	}
}

// byteProgress is a relayops.Progress drawing one bar per phase.
type byteProgress struct {
	w     io.Writer
	force bool // draw even when w is not a terminal (tests)
	bar   *Bar
}

// newByteProgress reports copy progress on the app's stderr, when that is
// a terminal.
func newByteProgress(w io.Writer) *byteProgress { return &byteProgress{w: w} }

func (p *byteProgress) Start(what string, total int64) {
	p.Finish()
	if p.force {
		p.bar = newBar(p.w, what, total, true)
	} else {
		p.bar = NewBar(p.w, what, total, true)
	}
}

func (p *byteProgress) Add(n int64) { p.bar.Add(n) }

func (p *byteProgress) Finish() {
	p.bar.Finish()
	p.bar = nil
}
