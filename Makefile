# escale — build, run and test.
GO        ?= go
BIN       ?= bin/escale
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/escale-sync/escale/pkg/version.Version=$(VERSION)
# Tests must not pick up a developer's rclone settings.
SCRUB     := env $(shell env | grep -o '^RCLONE_[A-Za-z0-9_]*' | sed 's/^/-u /')

.PHONY: all build run test test-short lint vet bench cross clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/escale

# The embedded default: two example folders syncing through a relay folder
# on the local disk, no account needed.
run: build
	./scripts/run-demo.sh $(BIN)

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The whole suite: unit tests, the storage conformance suite against real
# servers (in-process rclone servers and Debian's vsftpd, pure-ftpd, sshd,
# apache2 when installed; scripts/install-test-servers.sh installs them).
test: vet
	$(SCRUB) $(GO) test -count=1 -timeout 25m ./...

# No external server programs (rclone's in-process servers still run), no
# big objects: for the edit-compile loop.
test-short:
	ESCALE_NO_EXTERNAL_SERVERS=1 $(SCRUB) $(GO) test -short -count=1 ./...

# gofmt, go vet, and every package cross-compiled for the other platforms
# escale supports, so portability never rots.
lint: vet cross

# Cross-compile every package (and the tests' code) for Windows and macOS.
cross:
	GOOS=windows GOARCH=amd64 $(GO) build ./...
	GOOS=darwin GOARCH=arm64 $(GO) build ./...
	GOOS=windows GOARCH=amd64 $(GO) vet ./... >/dev/null
	GOOS=linux GOARCH=arm64 $(GO) build -o /dev/null ./cmd/escale

# Micro-benchmarks of the hot paths (envelope, scan); the side-by-side
# harness against the rclone floor is scripts/bench (to come).
bench:
	$(SCRUB) $(GO) test -run '^$$' -bench . -benchtime 3x ./pkg/envelope/ ./pkg/scan/

clean:
	rm -rf bin
