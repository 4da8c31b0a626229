//go:build unix

package integration

import (
	"encoding/json"
	"os"
	"sync"
	"testing"

	"github.com/escale-sync/escale/integration/reliabilityrow"
)

// ReportEnv names the file where each scenario appends its row (JSON lines)
// for docs/RELIABILITY.md; `make reliability` sets it.
const ReportEnv = "ESCALE_RELIABILITY_OUT"

// row is one scenario's measured figures, as reliabilityreport reads them.
type row = reliabilityrow.Row

var reportMu sync.Mutex

// report appends r to the report file, when one is asked for. It is called
// from t.Cleanup so that a failed scenario still has its row, marked failed.
func report(t *testing.T, r row) {
	r.Passed = !t.Failed()
	t.Logf("row: %+v", r)
	path := os.Getenv(ReportEnv)
	if path == "" {
		return
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Errorf("encode report row: %v", err)
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("open %s: %v", path, err)
		return
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		t.Errorf("write %s: %v", path, err)
	}
}
