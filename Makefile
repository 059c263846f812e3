# Kite — build, test and demo entry points. See README.md.
SHELL := /bin/bash
GO    ?= go
PKGS  ?= ./...

.PHONY: all build test test-short demo plugins services-up services-down lint vet fmt fuzz bench generate clean

all: build

build:
	$(GO) build ./...

# plugins builds every out-of-process plugin binary into bin/.
plugins:
	@mkdir -p bin
	@for d in $$(find plugins examples -path '*/cmd/*' -name main.go -exec dirname {} \; 2>/dev/null | sort); do \
		name=$$(basename $$d); echo "  plugin $$name"; \
		$(GO) build -o bin/$$name ./$$d || exit 1; \
	done

# test brings up what the tests need (ZooKeeper, etcd on loopback),
# builds plugin binaries, runs the race-enabled test suite and stops
# everything it started, also on failure.
test:
	@bash scripts/test.sh

# test-short runs the unit tests without external services.
test-short:
	$(GO) test -race -short $(PKGS)

demo:
	@bash scripts/demo.sh

services-up:
	@bash scripts/services.sh up

services-down:
	@bash scripts/services.sh down

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -l -w $$(git ls-files '*.go')

lint: vet
	@bash scripts/check-tidy.sh
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

FUZZTIME ?= 30s
fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME)

bench:
	@bash scripts/bench.sh

generate:
	$(GO) generate ./...

clean:
	rm -rf bin .kite

# soak runs the fault-injected load (default 10 minutes; SOAK=60s for a
# shorter run). See docs/RELIABILITY.md.
.PHONY: soak
soak:
	@bash scripts/soak.sh

# cluster-soak repeats the cluster scenarios of issue 14 (registry
# ensembles, hosts in network namespaces with partitions, loss and
# latency) under load, default 5 minutes (CLUSTER_SOAK=2m for shorter),
# and prints lost calls, failovers and recovery times. Needs root.
.PHONY: cluster-soak
cluster-soak:
	@bash scripts/cluster-soak.sh
