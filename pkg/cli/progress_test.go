package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProgressSilentOffTerminal: a bar on a buffer or a plain file draws
// nothing; forced on, the same calls draw the description and the bytes.
func TestProgressSilentOffTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	run := func(p *byteProgress) {
		p.Start("backup", 3<<20)
		p.Add(1 << 20)
		p.Add(2 << 20)
		p.Finish()
		p.Finish() // twice is harmless
	}
	run(newByteProgress(&buf))
	run(newByteProgress(f))
	if b, _ := os.ReadFile(f.Name()); buf.Len() != 0 || len(b) != 0 {
		t.Fatalf("progress drawn off a terminal: %q %q", buf.String(), b)
	}
	if bar := NewBar(&buf, "sync", 10, false); bar != nil {
		t.Fatal("NewBar gave a bar for a buffer")
	}
	var nilBar *Bar
	nilBar.Add(1)
	nilBar.Finish()

	run(&byteProgress{w: &buf, force: true})
	if out := buf.String(); !strings.Contains(out, "backup") || !strings.Contains(out, "/3.0 MiB") {
		t.Fatalf("forced progress drew %q", out)
	}
}
