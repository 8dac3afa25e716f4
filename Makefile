# The README's two commands are `make demo` and `make test`; everything else is a helper.
# Both work on a fresh machine: they create .venv, install npm and Python deps and build the JS.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
CHROMIUM ?= /usr/bin/chromium
# Where JupyterLab runs as root (containers, CI) it refuses to start without --allow-root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
# Never try to open a browser where there is no screen to show it on.
BROWSER_FLAG := $(if $(or $(DISPLAY),$(filter Darwin,$(shell uname -s))),,--no-browser)

.PHONY: demo test lint typecheck js-test pytest nbval bench build install chromium clean

demo: install
	@echo "Starting JupyterLab on notebooks/ (Ctrl-C to stop); open the URL it prints."
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 $(BROWSER_FLAG) $(ROOT_FLAG) notebooks/

test: install chromium lint typecheck js-test pytest nbval

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

# The editable install runs the npm build through hatch-jupyter-builder; `build` re-runs esbuild
# every time so that a stale bundle (skip-if-exists) never hides a JS change.
$(VENV)/.installed: $(PY) pyproject.toml node_modules/.package-lock.json
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed build

build: node_modules/.package-lock.json
	npm run --silent build

chromium:
	@if [ -x "$(CHROMIUM)" ]; then \
		echo "chromium: $$($(CHROMIUM) --version 2>/dev/null)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "chromium missing: installing Debian's chromium with apt-get"; \
		if [ -z "$$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]; then apt-get update -qq; fi; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		$(CHROMIUM) --version; \
	else \
		echo "ERROR: the browser tests need Chromium at $(CHROMIUM) and none is there." >&2; \
		echo "  Debian/Ubuntu: sudo apt-get install chromium" >&2; \
		echo "  elsewhere: install Chromium and run 'make test CHROMIUM=/path/to/chromium'" >&2; \
		exit 1; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

js-test: install
	npm test --silent

pytest: install chromium
	SSE_WIDGET_CHROMIUM=$(CHROMIUM) $(BIN)/pytest tests

nbval: install
	$(BIN)/pytest --nbval --nbval-current-env -p no:cacheprovider notebooks

bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) node_modules sse_widget/static .pytest_cache .mypy_cache .ruff_cache
