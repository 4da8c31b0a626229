package config

import (
	"fmt"
	"sort"
	"strings"
)

// legacyHints maps option names of the original escale (ORIGINAL.md §3.2,
// normalised by normKey) to advice, so a user who carries an old habit over
// is told the new way instead of a bare "unknown key". `escale import-config`
// converts whole old files.
var legacyHints = map[string]string{
	"local_path":            `use "path"`,
	"address":               `use "relay" (an rclone remote "name:path", an inline remote ":type,opt=value:path" or a local folder)`,
	"host_address":          `use "relay"`,
	"relay_address":         `use "relay"`,
	"remote_address":        `use "relay"`,
	"directory":             `use "relay" with the folder after the colon, e.g. "remote:folder"`,
	"host_directory":        `use "relay" with the folder after the colon, e.g. "remote:folder"`,
	"relay_directory":       `use "relay" with the folder after the colon, e.g. "remote:folder"`,
	"remote_directory":      `use "relay" with the folder after the colon, e.g. "remote:folder"`,
	"relay_dir":             `use "relay" with the folder after the colon, e.g. "remote:folder"`,
	"remote_dir":            `use "relay" with the folder after the colon, e.g. "remote:folder"`,
	"host_dir":              `use "relay" with the folder after the colon, e.g. "remote:folder"`,
	"dir":                   `use "relay" with the folder after the colon, e.g. "remote:folder"`,
	"host_path":             `use "relay" with the folder after the colon, e.g. "remote:folder"`,
	"relay_path":            `use "relay" with the folder after the colon, e.g. "remote:folder"`,
	"remote_path":           `use "relay" with the folder after the colon, e.g. "remote:folder"`,
	"port":                  "put the server, port and account in an rclone remote (rclone config) and name it in \"relay\"",
	"host_port":             "put the server, port and account in an rclone remote (rclone config) and name it in \"relay\"",
	"relay_port":            "put the server, port and account in an rclone remote (rclone config) and name it in \"relay\"",
	"remote_port":           "put the server, port and account in an rclone remote (rclone config) and name it in \"relay\"",
	"protocol":              "put the server, port and account in an rclone remote (rclone config) and name it in \"relay\"",
	"user":                  "put the server, port and account in an rclone remote (rclone config) and name it in \"relay\"",
	"username":              "put the server, port and account in an rclone remote (rclone config) and name it in \"relay\"",
	"auth_user":             "put the server, port and account in an rclone remote (rclone config) and name it in \"relay\"",
	"host_user":             "put the server, port and account in an rclone remote (rclone config) and name it in \"relay\"",
	"relay_user":            "put the server, port and account in an rclone remote (rclone config) and name it in \"relay\"",
	"remote_user":           "put the server, port and account in an rclone remote (rclone config) and name it in \"relay\"",
	"password":              "put the account in an rclone remote (rclone config) and name it in \"relay\"",
	"secret":                "put the account in an rclone remote (rclone config) and name it in \"relay\"",
	"secret_file":           "put the account in an rclone remote (rclone config) and name it in \"relay\"",
	"credential":            "put the account in an rclone remote (rclone config) and name it in \"relay\"",
	"ssl_version":           "set TLS options on the rclone remote named in \"relay\"",
	"verify_ssl":            "set TLS options on the rclone remote named in \"relay\"",
	"certfile":              "set TLS options on the rclone remote named in \"relay\"",
	"cert_file":             "set TLS options on the rclone remote named in \"relay\"",
	"certificate":           "set TLS options on the rclone remote named in \"relay\"",
	"keyfile":               `for TLS, set it on the rclone remote; for an age identity use "key_file"`,
	"private_key":           "set TLS options on the rclone remote named in \"relay\"",
	"client_name":           `use "client"`,
	"clientname":            `use "client"`,
	"passphrase":            `passphrases are never written in the configuration; put it in a file and set "passphrase_file", or use $ESCALE_PASSPHRASE`,
	"key":                   `keys are never written in the configuration; set "passphrase_file" or "key_file"`,
	"push_only":             `use mode = "upload"`,
	"read_only":             `use mode = "upload"`,
	"pull_only":             `use mode = "download"`,
	"write_only":            `use mode = "download"`,
	"synchronization_mode":  `use "mode"`,
	"file_extension":        `use "extensions"`,
	"file_type":             `use "extensions"`,
	"filetype":              `use "extensions"`,
	"include_files":         `use "include"`,
	"pattern":               `use "include"`,
	"filter":                `use "include" or "exclude"`,
	"exclude_files":         `use "exclude"`,
	"include_directory":     `use "include_dirs"`,
	"include_directories":   `use "include_dirs"`,
	"exclude_directory":     `use "exclude_dirs"`,
	"exclude_directories":   `use "exclude_dirs"`,
	"disk_quota":            `use "quota"`,
	"locktimeout":           `use "lock_timeout"`,
	"puller_count":          `use "pullers"`,
	"count":                 `use "pullers"`,
	"compact":               `use "index"`,
	"maxpagesize":           `use "max_pack_size"`,
	"maxarchivesize":        `use "max_pack_size"`,
	"max_page_size":         `use "max_pack_size"`,
	"cache":                 `use "state_dir"`,
	"cache_dir":             `use "state_dir"`,
	"checksum":              "escale always checks content with its own hash; remove it",
	"hash_algorithm":        "escale always checks content with its own hash; remove it",
	"checksum_cache":        "escale always keeps its local state in state_dir; remove it",
	"modification_time":     "escale always keeps modification times; remove it",
	"timestamp":             "escale always keeps modification times; remove it",
	"mtime":                 "escale always keeps modification times; remove it",
	"email":                 `use "maintainer" (and "smtp_server" if the mail server is not on this machine)`,
	"verbosity":             `use "log_level"`,
	"verbosity_level":       `use "log_level"`,
	"keep_alive":            "run escale under systemd (Restart=on-failure) to restart it; remove it",
	"pull_overwrite":        "escale detects conflicts and keeps both versions; remove it",
	"allow_page_deletion":   "escale cleans the relay itself; remove it",
	"page_deletion":         "escale cleans the relay itself; remove it",
	"rclone_binary":         "rclone is built into escale; remove it (use \"rclone_config\" for its configuration file)",
	"drive_binary":          "Google Drive is reached through rclone; remove it",
	"max_retries":           "escale retries by itself; remove it",
	"retry_on_error":        "escale retries by itself; remove it",
	"retryonerror":          "escale retries by itself; remove it",
	"upload_max_wait":       "escale paces uploads by itself; remove it",
	"max_pending_transfers": "escale paces transfers by itself; remove it",
	"split":                 "escale splits large files by itself; remove it",
	"split_size":            "escale splits large files by itself; remove it",
	"min_split_size":        "escale splits large files by itself; remove it",
	"client_count":          `remove it; "pullers" sets how many clients must fetch each update`,
	"homogeneous_clients":   "remove it; it was informative only",
	"upload_count":          "remove it; it was informative only",
	"priority":              "remove it; it had no effect",
}

// normKey folds the spellings the original accepted ("Lock Timeout",
// "lock-timeout") onto the TOML form ("lock_timeout").
func normKey(k string) string {
	k = strings.ToLower(strings.TrimSpace(k))
	return strings.NewReplacer(" ", "_", "-", "_").Replace(k)
}

// unknownKeyMsg explains an unknown key: the advice for an old option name,
// else the closest known key, else the list of known keys.
func unknownKeyMsg(key string, known []string) string {
	n := normKey(key)
	for _, k := range known {
		if k == n {
			return fmt.Sprintf("unknown key; did you mean %q?", k)
		}
	}
	if hint, ok := legacyHints[n]; ok {
		return "unknown key (an option of the original escale); " + hint
	}
	if s := closest(n, known); s != "" {
		return fmt.Sprintf("unknown key; did you mean %q?", s)
	}
	sorted := append([]string(nil), known...)
	sort.Strings(sorted)
	return "unknown key; known keys here are " + strings.Join(sorted, ", ")
}

// closest returns the candidate nearest to s by edit distance, if it is
// near enough to be a plausible typo: at most 3 edits, and at most a third
// of the word, so that short unrelated words are not suggested.
func closest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := editDistance(s, c)
		if d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	limit := max(1, min(3, len(s)/3))
	if bestD <= limit {
		return best
	}
	return ""
}

// editDistance is the optimal-string-alignment distance: insertions,
// deletions, substitutions and swaps of neighbours each cost one, so the
// usual typos ("puller", "mdoe", "max-pol") are one or two edits away.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
