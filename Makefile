# omsign: two commands set everything up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := tests/sigstore_local/node_modules/.installed

.PHONY: all demo test test-latest constraints lint typecheck fuzz bench bench-memory reliability-report clean system-deps node-deps venv

all: test

# The tests run against the exact versions in constraints.txt (what the suite last passed with);
# pyproject.toml holds the ranges users get. `make test-latest` tries the newest the ranges allow.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test,bench,ml]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's registry (distribution 2.8), skopeo (interop peer), GNU time (bench-memory),
# SoftHSM2 (PKCS#11 key tests) and Chromium (the gate's status page, read headless);
# installed when missing and we are root.
system-deps:
	@need=""; \
	command -v docker-registry >/dev/null || need="$$need docker-registry"; \
	command -v skopeo >/dev/null || need="$$need skopeo"; \
	[ -x /usr/bin/time ] || need="$$need time"; \
	command -v softhsm2-util >/dev/null || need="$$need softhsm2"; \
	command -v chromium >/dev/null || need="$$need chromium"; \
	if [ -n "$$need" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$need"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; \
	  else echo "missing:$$need (run as root or install them; registry tests will skip)"; fi; \
	fi

$(NODE_STAMP): tests/sigstore_local/package.json
	cd tests/sigstore_local && npm install --no-audit --no-fund --silent
	touch $(NODE_STAMP)

node-deps:
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(NODE_STAMP); else echo "npm missing: keyless tests will skip"; fi

test: $(STAMP) system-deps node-deps
	$(PY) -m pytest -q

# A fresh venv with the newest releases pyproject.toml allows (no constraints), then the suite:
# drift in a dependency shows here before users meet it.
LATEST_VENV := .venv-latest
test-latest: system-deps node-deps
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e '.[test,bench,ml]'
	$(LATEST_VENV)/bin/python -m pip list --format=freeze > $(LATEST_VENV)/versions.txt
	$(LATEST_VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

# Regenerate constraints.txt from the current venv (after `make test-latest` passed).
constraints: $(STAMP)
	$(PY) scripts/freeze_constraints.py constraints.txt

lint: $(STAMP)
	$(PY) -m ruff check oci_model_sign tests bench
	$(PY) -m mypy
	$(PY) -m mypy tests bench

demo: $(STAMP) system-deps
	$(PY) scripts/demo.py

bench: $(STAMP) system-deps
	$(PY) bench/run.py $(BENCH_ARGS)

bench-memory: $(STAMP) system-deps
	bash bench/memory.sh

fuzz: $(STAMP)
	$(PY) -m pytest -q tests/test_fuzz.py --hypothesis-profile=fuzz

reliability-report: $(STAMP) system-deps node-deps
	$(PY) -m pytest -q -p tests.reliability_report

clean:
	rm -rf $(VENV) $(LATEST_VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
