# The few commands a newcomer needs. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 9200

.PHONY: install system-deps frontend-deps demo test test-fast lint typecheck bench clean

install: $(VENV)/.installed

# torch first, pinned to the local CPU build, so nothing pulls multi-GB CUDA wheels.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[ml,dev]'
	touch $@

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/shoprank --data-dir ./data demo --port $(PORT)

# Integration tests start a real redis-server and drive headless Chromium (the inspector);
# install them where they are missing (Debian).
system-deps:
	@command -v redis-server >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq redis-server; fi; }
	@# Compose validator for the docker/ stacks (tests/contract/test_docker.py).
	@command -v docker-compose >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq docker-compose; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq docker-compose; fi; } \
		|| echo "docker-compose could not be installed: the compose validation test will skip"
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi; }

# The frontend tier (tests/integration/test_frontends.py) drives the real Searchkit and
# Search UI packages in Node, at the versions pinned in tests/frontends/package-lock.json.
FRONTENDS := tests/frontends
frontend-deps: $(FRONTENDS)/node_modules/.installed

$(FRONTENDS)/node_modules/.installed: $(FRONTENDS)/package.json $(FRONTENDS)/package-lock.json
	@if command -v npm >/dev/null; then \
		cd $(FRONTENDS) && npm ci --no-audit --no-fund && touch node_modules/.installed; \
	else echo "npm is not installed: the frontend tests (tests/integration/test_frontends.py) will skip"; fi

# One test process per core (pytest-xdist); a file's tests stay together in one process, so
# its module fixtures (a loaded index, a server) are built once.
PYTEST_WORKERS ?= auto

test: install system-deps frontend-deps
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=25 tests

test-fast: install system-deps frontend-deps
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile tests -m "not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy strict over the package as it is installed (`shoprank.plugin`, ...): the namespace
# view maps the source folders the way pyproject's package-dir does.
typecheck: install
	$(PY) .ci/namespace_view.py build/typecheck
	MYPYPATH=build/typecheck $(VENV)/bin/mypy -p shoprank

bench: install
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench_embedded.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache $(FRONTENDS)/node_modules
