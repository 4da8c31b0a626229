package storage

import (
	"time"

	"github.com/rclone/rclone/fs"
)

// maxObjectSizes holds the per-object caps of backends that have a documented
// one; rclone has no generic field for it. Decimal units (the smaller
// reading of the providers' "TB"/"GB") keep escale on the safe side. Every
// backend not listed (local, sftp, ftp, webdav, memory, ...) has no cap of
// its own; the disk or the server's quota decides.
//
// Note for s3: a Put of unknown size (size -1) streams in rclone's multipart
// chunks (chunk_size × 10,000 parts, 48.8 GiB with the default 5 MiB chunk),
// a lower limit than 5 TB; escale's relay objects are far smaller.
var maxObjectSizes = map[string]int64{
	"s3":                   5e12,  // Amazon S3: 5 TB per object
	"google cloud storage": 5e12,  // GCS: 5 TB per object
	"drive":                5e12,  // Google Drive: 5 TB per file
	"b2":                   10e12, // Backblaze B2: 10 TB per file
	"onedrive":             250e9, // OneDrive: 250 GB per file
	"dropbox":              350e9, // Dropbox API upload sessions: 350 GB
}

// typeNames maps Go package names of backends to their rclone type where the
// two differ.
var typeNames = map[string]string{
	"googlecloudstorage": "google cloud storage",
	"googlephotos":       "google photos",
}

// backendType is the rclone type of the backend actually serving f (for an
// alias remote, the type of its target).
func backendType(f fs.Fs) string {
	t := fs.Type(f)
	if _, err := fs.Find(t); err == nil {
		return t
	}
	if name, ok := typeNames[t]; ok {
		return name
	}
	return t
}

// featuresOf reads what f can do. serverModTime says the relay reads the
// server's upload time (rclone's --use-server-modtime) on backends where the
// stored mtime costs a request per object.
func featuresOf(f fs.Fs, serverModTime bool) Features {
	ff := f.Features()
	typ := backendType(f)
	feat := Features{
		Type:              typ,
		ConditionalCreate: typ == "s3",
		ServerSideMove:    ff.Move != nil,
		ServerSideCopy:    ff.Copy != nil,
		About:             ff.About != nil,
		ChangeNotify:      ff.ChangeNotify != nil,
		MaxObjectSize:     maxObjectSizes[typ],
		CaseInsensitive:   ff.CaseInsensitive,
		IsLocal:           ff.IsLocal,
		BucketBased:       ff.BucketBased,
	}
	for _, h := range f.Hashes().Array() {
		feat.Hashes = append(feat.Hashes, h.String())
	}
	if p := f.Precision(); p != fs.ModTimeNotSupported {
		feat.ModTimePrecision = p
		feat.SetModTime = true
		if serverModTime && ff.SlowModTime {
			// The server's upload time is what we read back, to the second.
			feat.ModTimePrecision = max(p, time.Second)
			feat.SetModTime = false
		}
	}
	return feat
}
