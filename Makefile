# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= examples/router.yaml

.PHONY: run test lint typecheck rules-test unit system-deps kafka-fetch k8s-checks bench clean constraints

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt -e '.[test]'
	touch $@

## Start the router on the embedded backend with the shipped example config and rules.
run: $(STAMP)
	$(BIN)/incident-router serve --config $(CONFIG)

## Install what tests need, start what they need (Kafka, Alertmanager), run everything.
test: $(STAMP) system-deps kafka-fetch lint typecheck rules-test k8s-checks unit

lint: $(STAMP)
	$(BIN)/ruff check router tests bench tools

typecheck: $(STAMP)
	$(BIN)/mypy --strict router

rules-test: $(STAMP)
	$(BIN)/incident-router test-rules --config $(CONFIG) rules/*.test.yaml

unit: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Dockerfile, Helm chart, deploy/ manifests, Prometheus/Alertmanager examples (offline).
# helm is built once with `go install` into ~/.cache/incident-router/.
k8s-checks: $(STAMP) system-deps
	$(BIN)/python tools/k8s_checks.py

# Real Alertmanager and Prometheus for the end-to-end tests, and Chromium with its chromedriver
# for the console's browser tests (tests/ui), from Debian's packages.
system-deps:
	@if ! command -v prometheus-alertmanager >/dev/null || ! command -v prometheus >/dev/null \
	    || ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    prometheus-alertmanager prometheus chromium chromium-driver >/dev/null; \
	fi

# Apache Kafka jars from Maven Central into a cache; the tests start the broker themselves.
kafka-fetch: $(STAMP)
	$(BIN)/python tools/kafka/broker.py fetch

bench: $(STAMP) system-deps kafka-fetch
	$(BIN)/pip install --quiet py-spy==0.4.3  # the stages scenario's profiler
	$(BIN)/python bench/run.py

## Re-pin constraints.txt: the newest versions pyproject.toml allows (runtime + kafka extra).
constraints: $(STAMP)
	$(BIN)/pip install --quiet --dry-run --ignore-installed --report $(VENV)/report.json '.[kafka]'
	{ sed -n '/^#/p' constraints.txt; $(BIN)/python -c 'import json, sys; \
	  ms = [i["metadata"] for i in json.load(open(sys.argv[1]))["install"]]; \
	  print(*sorted(m["name"].lower().replace("_", "-") + "==" + m["version"] for m in ms \
	               if m["name"] != "incident-router"), sep="\n")' $(VENV)/report.json; \
	} > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache .pytest_cache
