package storage_test

import (
	"testing"

	"github.com/escale-sync/escale/pkg/storage/storagetest"
	"github.com/escale-sync/escale/pkg/storage/testserver"
)

// TestConformanceOnServers runs the storage conformance suite against every
// real server testserver can start on this machine: rclone's in-process
// WebDAV, FTP, SFTP and S3 servers, and Debian's vsftpd (plain and FTPS),
// pure-ftpd, OpenSSH and apache2's mod_dav. A server whose software is
// missing is left out unless ESCALE_REQUIRE_SERVERS=1.
func TestConformanceOnServers(t *testing.T) {
	for _, srv := range testserver.All(t) {
		t.Run(srv.Name, func(t *testing.T) {
			storagetest.RunConformance(t, srv.Spec)
		})
	}
}
