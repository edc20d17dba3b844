# tether — see README.md. Every target installs what it needs.
GO        ?= go
PKGS      ?= ./...
BENCHTIME ?= 1s
FUZZTIME  ?= 20s
BIN       := bin/tether
# The version stamp (tether version): git describe, and the commit.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: deb systemd promtool kubectl
.PHONY: soak
.PHONY: all build test deps browser haproxy iproute2 vet lint bench bench-go bench-e2e fuzz demo chaos clean

all: build

deps:
	$(GO) mod download

build: deps
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/tether

# The browser test needs Debian's chromium, the benchmark harness's test
# HAProxy; install them when they are missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium for the admin browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null || \
	  echo "warning: could not install chromium"; }

haproxy:
	@command -v haproxy >/dev/null 2>&1 || { \
	  echo "installing haproxy for the end-to-end benchmark"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy) >/dev/null || \
	  echo "warning: could not install haproxy"; }

# The namespace tests (test/netns) need the ip command.
iproute2:
	@command -v ip >/dev/null 2>&1 || { \
	  echo "installing iproute2 for the network namespace tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2) >/dev/null || \
	  echo "warning: could not install iproute2"; }

vet: deps
	$(GO) vet $(PKGS)

test: deps browser haproxy iproute2 systemd promtool kubectl vet
	$(GO) test -race -shuffle=on -timeout 20m $(PKGS)

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt: $$out"; exit 1; }

bench: bench-go bench-e2e

# Go benchmarks, benchstat-friendly (one package at a time, -count 1; run
# with BENCHCOUNT=6 and feed two runs to benchstat to compare).
BENCHCOUNT ?= 1
bench-go: deps
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) -cpu 1,2 ./stickydb/
	$(GO) test -run '^$$' -bench 'EncodeGroup|DecodeGroup|WireCost' -benchmem -count $(BENCHCOUNT) ./gossip/
	$(GO) test -run '^$$' -bench 'Convergence' -benchtime 400x -count $(BENCHCOUNT) ./gossip/
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 3x -count $(BENCHCOUNT) ./recovery/
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) ./web/
	$(GO) test -run '^$$' -bench 'ServeHTTPHit|SelectHit' -benchmem -count $(BENCHCOUNT) ./proxy/
	$(GO) test -run '^$$' -bench 'Convergence' -benchtime 300x -count $(BENCHCOUNT) ./test/

# End-to-end: direct, one tether node, a 3-node fleet, HAProxy (1 process, and
# 2 sharing a stick table via peers), interleaved rounds, medians, written to
# bench/RESULTS.md. About 2 min by default; longer with e.g.
#   make bench-e2e BENCH_E2E_FLAGS='-rounds 5 -duration 20s'
# Installs haproxy when it is missing (its rows say so if that fails).
BENCH_E2E_FLAGS ?=
bench-e2e: build haproxy
	$(GO) build -o bin/bench-e2e ./bench/e2e
	./bin/bench-e2e -tether $(BIN) -out bench/RESULTS.md $(BENCH_E2E_FLAGS)

# Every Fuzz target of every package, each for FUZZTIME (seed corpora live in
# each package's testdata/fuzz and run in plain `go test` too).
fuzz: deps
	@set -e; for f in $$(git grep -l '^func Fuzz' -- '*_test.go'); do \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$f | sed 's/func //'); do \
	    echo "== fuzz ./$$(dirname $$f) $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f); \
	  done; done

# The deep property runs of the pure core and the wire format, each with a
# fresh seed per run (rapid prints it on failure; replay with
# -rapid.seed=N): the fleet simulation at 1500 checks x 300 steps for
# SOAK_SEEDS seeds, the whole-lifetime test at 10x (1000 fleets x 80
# phases), a fleet of processes through 60 TTLs with 30 restarts per
# recovery mode, the merge semilattice and gossip's wire round trips at 10x
# checks, recovery's randomized crash tests 10 times. About 40 min on the
# 2-core machine with the default 40 seeds (15 seeds took 21 min); bounded by SOAK_TIMEOUT per
# command.
SOAK_SEEDS   ?= 40
SOAK_TIMEOUT ?= 25m
soak: deps
	@set -e; for n in $$(seq 1 $(SOAK_SEEDS)); do \
	  seed=$$(od -An -N4 -tu4 /dev/urandom | tr -d ' '); \
	  echo "== soak: TestSimulatedFleetConverges run $$n (1500 checks x 300 steps) -rapid.seed=$$seed"; \
	  $(GO) test -count=1 -timeout $(SOAK_TIMEOUT) -run '^TestSimulatedFleetConverges$$' ./stickydb/ -rapid.checks=1500 -rapid.steps=300 -rapid.seed=$$seed; \
	done
	@echo "== soak: TestFleetLifetime x10 (1000 fleets x 80 phases)"
	LIFETIME_PHASES=80 $(GO) test -count=1 -v -timeout $(SOAK_TIMEOUT) -run '^TestFleetLifetime$$' ./stickydb/ -rapid.checks=1000
	@echo "== soak: stickydb merge and change log, gossip wire properties x10"
	$(GO) test -count=1 -timeout $(SOAK_TIMEOUT) -run '^TestMergeIsASemilattice$$' ./stickydb/ -rapid.checks=1000
	$(GO) test -count=1 -timeout $(SOAK_TIMEOUT) -run '^TestEventLogMatchesModel$$' ./stickydb/ -rapid.checks=1000
	$(GO) test -count=1 -timeout $(SOAK_TIMEOUT) -run '^Test(Group|Chunk|RequestEndState)RoundTrip$$|^TestReaderMatchesMsgpack$$' ./gossip/ -rapid.checks=1000
	@echo "== soak: the fast path and the loop against net/http, plain and over TLS, x10"
	$(GO) test -count=1 -timeout $(SOAK_TIMEOUT) -run '^TestFast(Responses)?MatchesStdlibProperty$$' ./proxy/ -rapid.checks=1000
	@echo "== soak: a fleet of processes through 60 TTLs, 30 restarts per recovery mode"
	LONGRUN_RESTARTS=30 LONGRUN_TTLS=60 $(GO) test -count=1 -v -timeout $(SOAK_TIMEOUT) -run '^TestFleetLongRun$$' ./test/
	@echo "== soak: recovery's kill -9 test x10"
	$(GO) test -count=10 -timeout $(SOAK_TIMEOUT) -run '^TestKillNine$$' ./recovery/

# The long chaos run (test/chaos): a 5-node fleet built with -tags
# faultinject (and the race detector), nemeses drawn from the seed,
# sometimes two at once, for CHAOS_DURATION; the figures go to stdout and
# bin/chaos-report.txt, every node's log to bin/chaos-logs/. Rerun a run
# with its seed (printed first). `make test` runs the short form: every
# nemesis once, about 2 minutes. E.g.
#   make chaos CHAOS_DURATION=30m CHAOS_SEED=42 CHAOS_FLAGS=-race=false
CHAOS_DURATION ?= 10m
CHAOS_SEED     ?= 0
CHAOS_FLAGS    ?=
chaos: deps
	@mkdir -p $(CURDIR)/bin/chaos-logs
	$(GO) test -count=1 -v -timeout 0 -run '^TestChaos$$' ./test/chaos/ -args \
	  -duration $(CHAOS_DURATION) -seed $(CHAOS_SEED) -report $(CURDIR)/bin/chaos-report.txt -logs $(CURDIR)/bin/chaos-logs $(CHAOS_FLAGS)

# make demo DEMO_FLAGS="--base 9000" moves every port; DEMO_FLAGS go to `tether demo`.
DEMO_FLAGS ?=

# The Debian package: a static binary stamped like `make build`, the
# systemd unit, /etc/tether/tether.env and a logrotate snippet
# (packaging/). nfpm runs from the module proxy at a pinned version; the
# package lands in $(DEB_OUT). Debian versions: v1.2.3-4-gabc -> 1.2.3+4.gabc,
# no tag -> 0.0.0+git<commits>.<hash>.
NFPM        ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
DEB_OUT     ?= bin
GOARCH      ?= $(shell $(GO) env GOARCH)
DEB_VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null) && echo "$${v\#v}" | sed 's/-\([0-9]*\)-g/+\1.g/' || \
                 echo "0.0.0+git$$(git rev-list --count HEAD 2>/dev/null || echo 0).$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)")
deb: deps
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/deb/tether ./cmd/tether
	@mkdir -p $(DEB_OUT)
	VERSION=$(VERSION) COMMIT=$(COMMIT) DEB_VERSION=$(DEB_VERSION) GOARCH=$(GOARCH) \
	  $(NFPM) package --config packaging/nfpm.yaml --packager deb --target $(DEB_OUT)

# The packaging test runs systemd-analyze on the unit; the deploy tests run
# promtool on the alert rules and kubectl kustomize on the manifests.
# Installed from Debian when missing.
systemd:
	@command -v systemd-analyze >/dev/null 2>&1 || { \
	  echo "installing systemd for systemd-analyze"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd) >/dev/null || \
	  echo "warning: could not install systemd"; }

kubectl:
	@command -v kubectl >/dev/null 2>&1 || { \
	  echo "installing kubernetes-client for kubectl kustomize"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client) >/dev/null || \
	  echo "warning: could not install kubernetes-client (kubectl)"; }

promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing prometheus for promtool"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) >/dev/null || \
	  echo "warning: could not install prometheus (promtool)"; }

demo: build
	./$(BIN) demo $(DEMO_FLAGS)

clean:
	rm -rf bin

# Scale envelope (issue 14, not part of make test): N in-process nodes at a
# fixed fleet-wide rate of new bindings (N = 3, 10, 25, 50, each <= 30 s),
# a joiner with 1M bindings, and one node's table up to 10M bindings
# (heap, snapshot, recovery, search, GC). About 4 min, up to ~2.5 GiB.
# Writes bench/scale.json; the charts are drawn from it into bench/*.png.
SCALE_FLAGS ?= -fleet 3,10,25,50 -table 100000,1000000,3000000,10000000
.PHONY: scale scale-plot scale-netns scale-proxy
scale: deps
	$(GO) run ./bench/scale $(SCALE_FLAGS) -out bench/scale.json
	$(MAKE) scale-plot

scale-plot:
	cd bench/scale/plot && $(GO) run . -in ../../scale.json -out ../..

# The fleet as separate hosts: N tether processes, each in a network
# namespace of its own (root, iproute2), at a fleet-wide rate of new
# bindings through the proxies; convergence, CPU and gossip bytes per node,
# idle, loaded and after a crash. bench/SCALE.md has the figures.
SCALE_NETNS_FLAGS ?= -netns.sizes 10,25 -netns.scale-rate 500 -netns.scale-window 10s
scale-netns: deps iproute2
	$(GO) test -run '^$$' -bench NamespaceFleet -benchtime 1x -timeout 20m ./test/netns/ $(SCALE_NETNS_FLAGS)

# One node's proxy under load with 10k and with 10M bindings recovered
# from its disk: latency, GC, heap. About 2 min, ~2.5 GiB.
SCALE_PROXY_FLAGS ?= -tablesize.sizes 10000,10000000
scale-proxy: deps
	$(GO) test -run '^$$' -bench ProxyByTableSize -benchtime 1x -timeout 20m ./test/ $(SCALE_PROXY_FLAGS)
