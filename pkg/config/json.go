package config

import "encoding/json"

// JSON forms write durations as ParseDuration strings ("30d") and the index
// as written in the file, so `escale config check --json` output reads like
// the configuration and parses back.

// MarshalJSON writes r with its durations as strings.
func (r Repository) MarshalJSON() ([]byte, error) {
	type plain Repository // drops this method, avoiding recursion
	// Empty lists print as [], not null: they mean "no filter".
	for _, l := range []*[]string{&r.Include, &r.Exclude, &r.IncludeDirs, &r.ExcludeDirs, &r.Extensions} {
		if *l == nil {
			*l = []string{}
		}
	}
	return json.Marshal(struct {
		plain
		PullerTimeout string `json:"puller_timeout"`
		Index         string `json:"index"`
		MinPoll       string `json:"min_poll"`
		MaxPoll       string `json:"max_poll"`
		LockTimeout   string `json:"lock_timeout"`
	}{plain(r), FormatDuration(r.PullerTimeout), r.Index.String(), FormatDuration(r.MinPoll), FormatDuration(r.MaxPoll), FormatDuration(r.LockTimeout)})
}

// MarshalJSON writes l with max_age as a string.
func (l LogRotate) MarshalJSON() ([]byte, error) {
	type plain LogRotate
	return json.Marshal(struct {
		plain
		MaxAge string `json:"max_age"`
	}{plain(l), FormatDuration(l.MaxAge)})
}

// MarshalJSON writes c with alert_interval and settle as strings.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config
	return json.Marshal(struct {
		plain
		AlertInterval string `json:"alert_interval"`
		Settle        string `json:"settle"`
	}{plain(c), FormatDuration(c.AlertInterval), FormatDuration(c.Settle)})
}
