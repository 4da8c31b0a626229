# escale — build, run and test.
GO        ?= go
BIN       ?= bin/escale
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/escale-sync/escale/pkg/version.Version=$(VERSION)
# Tests must not pick up a developer's rclone settings.
SCRUB     := env $(shell env | grep -o '^RCLONE_[A-Za-z0-9_]*' | sed 's/^/-u /')

.PHONY: all build run test test-short lint vet bench cross clean torture reliability

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

# escale against the rclone floor (rclone copy A→relay, relay→B), side by
# side on local, SFTP and WebDAV relays (docs/BENCHMARKS.md). Full size takes
# hours; pick pieces with e.g. BENCH_ARGS='-only small -relays local -runs 1'.
bench:
	$(SCRUB) $(GO) run ./scripts/bench -sizes full $(BENCH_ARGS)

# The same harness on tiny data: a minute, to keep it alive.
bench-smoke:
	$(SCRUB) $(GO) run ./scripts/bench -sizes smoke -runs 1 $(BENCH_ARGS)

# Micro-benchmarks of the hot paths (envelope, chunking, packing, hashing,
# scan), 6 counts each; benchstat compares with the previous run if any.
bench-micro:
	@mkdir -p bin; [ ! -f bin/bench-micro.txt ] || mv bin/bench-micro.txt bin/bench-micro.old.txt
	$(SCRUB) $(GO) test -run '^$$' -bench . -benchmem -count 6 ./pkg/envelope/ ./pkg/engine/ ./pkg/scan/ | tee bin/bench-micro.txt
	$(GO) run golang.org/x/perf/cmd/benchstat@latest $$([ -f bin/bench-micro.old.txt ] && echo bin/bench-micro.old.txt) bin/bench-micro.txt \
	  || { echo "benchstat unavailable; raw results in bin/bench-micro.txt"; }

# The reliability suite at full length: 500+ kill -9 across FTP, SFTP,
# WebDAV and S3, longer network faults (integration/; `make test` runs the
# short version). ESCALE_TORTURE_SEED=N replays a run.
torture:
	ESCALE_TORTURE=full $(SCRUB) $(GO) test -count=1 -timeout 90m ./integration/

# docs/RELIABILITY.md from a run of the reliability suite (short by default;
# RELIABILITY_MODE=full for the torture lengths).
RELIABILITY_MODE ?= short
reliability:
	rm -f bin/reliability.jsonl; mkdir -p bin
	-ESCALE_RELIABILITY_OUT=$(CURDIR)/bin/reliability.jsonl \
	  $(if $(filter full,$(RELIABILITY_MODE)),ESCALE_TORTURE=full) $(SCRUB) $(GO) test -count=1 -timeout 90m ./integration/
	$(GO) run ./integration/reliabilityreport bin/reliability.jsonl $(RELIABILITY_MODE) > docs/RELIABILITY.md

clean:
	rm -rf bin
