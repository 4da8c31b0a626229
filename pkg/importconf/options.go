package importconf

import "strings"

// aliases maps every option name the original escale recognised
// (ORIGINAL.md §3.2, normalised by normName) to its field.
var aliases = func() map[string]string {
	fields := map[string][]string{
		"path":                {"local path", "path"},
		"address":             {"host address", "relay address", "remote address", "address"},
		"directory":           {"host directory", "relay directory", "remote directory", "directory", "relay dir", "remote dir", "host dir", "dir", "host path", "relay path", "remote path"},
		"port":                {"port", "host port", "relay port", "remote port"},
		"username":            {"user", "auth user", "host user", "relay user", "remote user"},
		"password":            {"password", "secret", "secret file", "credential"},
		"protocol":            {"protocol"},
		"refresh":             {"refresh"},
		"timestamp":           {"modification time", "timestamp", "mtime"},
		"clientname":          {"client name", "client"},
		"encryption":          {"encryption"},
		"passphrase":          {"passphrase", "key"},
		"push_only":           {"push only", "read only"},
		"pull_only":           {"pull only", "write only"},
		"ssl_version":         {"ssl version"},
		"verify_ssl":          {"verify ssl"},
		"certfile":            {"certfile", "cert file", "certificate"},
		"keyfile":             {"keyfile", "key file", "private key"},
		"filetype":            {"file extension", "file type"},
		"include":             {"include", "include files", "pattern", "filter"},
		"exclude":             {"exclude", "exclude files"},
		"includedirectory":    {"include directory", "include directories"},
		"excludedirectory":    {"exclude directory", "exclude directories"},
		"quota":               {"disk quota", "quota"},
		"maintainer":          {"maintainer", "email"},
		"locktimeout":         {"lock timeout"},
		"mode":                {"mode", "synchronization mode"},
		"count":               {"puller count", "pullers"},
		"checksum":            {"checksum", "hash algorithm"},
		"checksumcache":       {"checksum cache"},
		"index":               {"index", "compact"},
		"maxpagesize":         {"maxpagesize", "maxarchivesize"},
		"pulloverwrite":       {"pull overwrite"},
		"allow_page_deletion": {"allow page deletion", "page deletion"},
		"verbosity":           {"verbosity", "verbosity level"},
		"minsplitsize":        {"min split size", "split size", "split"},
		"maxpendingtransfers": {"max pending transfers"},
		"retryonerror":        {"retryonerror", "retry on error"},
		// Global-only options, and free-form ones read elsewhere.
		"log_file":            {"log file"},
		"log_level":           {"log level"},
		"log_rotate":          {"log rotate"},
		"keep_alive":          {"keep alive"},
		"cache":               {"cache", "cache dir"},
		"rclone_binary":       {"rclone binary"},
		"drive_binary":        {"drive binary"},
		"max_retries":         {"max retries"},
		"upload_max_wait":     {"upload max wait"},
		"priority":            {"priority"},
		"client_count":        {"client count"},
		"homogeneous_clients": {"homogeneous clients"},
		"upload_count":        {"upload count"},
	}
	m := map[string]string{}
	for f, names := range fields {
		for _, n := range names {
			m[normName(n)] = f
		}
	}
	return m
}()

// normName folds the spellings "Lock Timeout", "lock_timeout" and
// "lock-timeout" onto "lock timeout".
func normName(k string) string {
	k = strings.ToLower(strings.NewReplacer("_", " ", "-", " ").Replace(k))
	return strings.Join(strings.Fields(k), " ")
}

// noEquivalent explains the options escale has no use for.
var noEquivalent = map[string]string{
	"ssl_version":         "TLS settings belong to the rclone remote named in relay (rclone config)",
	"verify_ssl":          "TLS settings belong to the rclone remote named in relay (rclone config; no_check_certificate for ftp)",
	"certfile":            "client certificates belong to the rclone remote named in relay (rclone config)",
	"keyfile":             "client certificates belong to the rclone remote named in relay (rclone config)",
	"checksum":            "escale checks content with its own hash (BLAKE3); nothing to set",
	"checksumcache":       "escale always keeps its hashes in its local state (state_dir); nothing to set",
	"pulloverwrite":       "escale detects conflicts and keeps both versions; nothing to set",
	"allow_page_deletion": "escale collects relay data itself once every puller has it; nothing to set",
	"minsplitsize":        "escale splits large files into chunks by itself; nothing to set",
	"maxpendingtransfers": "escale paces its transfers itself (the option did not work in the original either)",
	"retryonerror":        "escale retries with backoff by itself (the option had no effect in the original)",
	"keep_alive":          "run `escale sync` under systemd with Restart=on-failure (or cron `escale sync --once`) instead",
	"rclone_binary":       "rclone is built into escale; use rclone_config to name its configuration file",
	"drive_binary":        "Google Drive is reached through rclone: create a drive remote with rclone config",
	"max_retries":         "escale retries with backoff by itself",
	"upload_max_wait":     "escale paces uploads by itself",
	"priority":            "it had no effect in the original",
	"client_count":        `informative only; "pullers" says how many clients must fetch each update`,
	"homogeneous_clients": "informative only",
	"upload_count":        "informative only",
}
