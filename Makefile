# usher: the two quick-start commands and CI helpers. `make help` lists the targets.

CARGO ?= cargo
JOBS  ?= 2
USHER := target/release/usher
# apt-get needs root; use sudo when not root and sudo exists.
SUDO  := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo)

.PHONY: help setup setup-test demo test keys check-conf bench bench-load bench-sse

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: ## install the system packages the build needs (cmake, for Pingora's zlib-ng)
	@command -v cmake >/dev/null 2>&1 || { \
	  echo "usher: installing cmake (Pingora builds zlib-ng with it)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq cmake; }
	@command -v cargo >/dev/null 2>&1 || { echo "usher: Rust is needed: https://rustup.rs"; exit 1; }

setup-test: setup ## also what the tests need: Java 17 and Maven (Apache Cassandra), Chromium, curl, HAProxy and Prometheus
	@command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1 || { \
	  echo "usher: installing Java and Maven (the tests run a real Cassandra node)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq openjdk-17-jre-headless maven; }
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "usher: installing Chromium (the browser test drives a headless one)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }
	@command -v curl >/dev/null 2>&1 && { command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; } || { \
	  echo "usher: installing curl and HAProxy (HTTP/2 and the PROXY protocol in tests/edge.rs)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq curl haproxy; }
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "usher: installing Prometheus (tests/observability.rs scrapes usher and checks the alert rules)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq prometheus; }

demo: setup ## build usher and run it in front of a demo shop: open http://127.0.0.1:8080/checkout
	$(CARGO) run --release -j$(JOBS) --bin usher -- demo --config conf/demo.toml

test: setup-test ## the whole test suite, with a throwaway Cassandra node for the CQL store
	JOBS=$(JOBS) bash scripts/test.sh

keys: ## make the signing keys the configs in conf/ refer to (never committed)
	$(CARGO) build --release -j$(JOBS) --bin usher
	$(USHER) keygen --out conf/keys/demo.pem --if-missing
	$(USHER) keygen --out conf/keys/usher-k1.pem --if-missing

check-conf: keys ## `usher check` every shipped config
	$(USHER) check --config conf/*.toml

bench: ## criterion benchmarks of the hot paths
	$(CARGO) bench -j$(JOBS) --bench hot_paths

bench-load: ## end-to-end load: usher vs bare Pingora vs nginx (needs wrk and nginx)
	bash benches/load/run.sh

bench-sse: ## concurrent SSE visitors on one node: memory per stream, wake-storm CPU (about 3 min)
	bash benches/load/sse.sh
