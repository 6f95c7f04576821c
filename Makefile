# yurthub: see README.md. Every target works on a fresh machine after .ci/run's
# apt-get step (or the packages it lists).
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/yurthub/yurthub/internal/version.Version=$(VERSION)
GOFLAGS_BUILD := -trimpath -ldflags "$(LDFLAGS)"
# Where testdata/kube/build.sh caches etcd, kube-apiserver, kube-controller-manager
# and kubectl (outside the repo, keyed by version).
KUBE_BIN_DIR = $(shell testdata/kube/build.sh | tail -n1)

.PHONY: all build test test-unit test-integration bench bench-go lint demo kube-bins clean package package-test test-network

all: build

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o bin/yurthub .
	ln -sf yurthub bin/hubctl

# kube-bins builds (or finds cached) the real apiserver the integration tests use.
kube-bins:
	testdata/kube/build.sh

# test: everything, unit and integration. Under CI=true a missing prerequisite fails.
test: lint build kube-bins package-test
	YURTHUB_KUBE_BIN_DIR="$(KUBE_BIN_DIR)" $(GO) test -count=1 -timeout 45m ./...

test-unit:
	$(GO) test -count=1 -short ./...

# test-network: internal/network alone (namespace tests, then the qemu boot of Debian's
# cloud kernel with the real dummy driver); `make test` runs the same through ./...
test-network:
	$(GO) test -count=1 -v ./internal/network/

# bench: internal/bench measures the hub against the apiserver directly (under 10 minutes
# on 2 cores) into docs/bench/latest/; testdata/bench/chart (its own module: gonum/plot
# stays out of yurthub) draws chart.png. bench-go runs the packages' testing.B benchmarks.
bench: build kube-bins
	YURTHUB_KUBE_BIN_DIR="$(KUBE_BIN_DIR)" $(GO) run ./internal/bench --out docs/bench/latest --readme README.md
	cd testdata/bench/chart && $(GO) run . ../../../docs/bench/latest/results.json
	@echo "== cache store vs OpenYurt's one-fsync'd-file-per-object layout (docs/cache.md)"
	$(GO) test -run '^$$' -bench . -benchmem ./internal/store

bench-go: build kube-bins
	YURTHUB_KUBE_BIN_DIR="$(KUBE_BIN_DIR)" $(GO) test -run '^$$' -bench . -benchmem ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^testdata/')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# demo: internal/demo/demo.sh (builds what it needs; internal/demo's test runs it in CI).
demo:
	internal/demo/demo.sh

# package: .deb and .rpm for amd64 and arm64 into dist/ (packaging/README.md).
package:
	packaging/build.sh dist

# package-test: reproducibility, lintian, rpm -qp, systemd-analyze, and install/
# upgrade/purge under a real systemd in systemd-nspawn (needs root).
package-test:
	packaging/test.sh dist

clean:
	rm -rf bin dist
