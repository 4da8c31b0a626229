// Package reliabilityrow is the row the reliability suite (integration/)
// writes for each scenario and reliabilityreport reads back: one definition,
// so the writer and the reader of the JSON lines stay in step.
package reliabilityrow

// Row is one scenario's measured figures, one JSON line in the file named
// by ESCALE_RELIABILITY_OUT.
type Row struct {
	Scenario string  `json:"scenario"`
	Server   string  `json:"server"`
	Runs     int     `json:"runs"`
	Kills    int     `json:"kills"`
	Faults   int     `json:"faults"`
	Checked  int     `json:"versions_checked"`
	Lost     int     `json:"versions_lost"`
	Seconds  float64 `json:"seconds"`
	Seed     uint64  `json:"seed"`
	Passed   bool    `json:"passed"`
	Notes    string  `json:"notes"`
}
