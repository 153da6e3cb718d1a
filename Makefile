PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: install test test-fast demo lint clean bench bench-peers bench-hops soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e . --config-settings editable_mode=compat
	touch $@

# Both extras' stamps follow pyproject.toml through $(STAMP), and name it too, so that a change
# to a pin (say the linters in the test extra) reinstalls before the next lint or test.
$(TEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $@

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[bench]' --config-settings editable_mode=compat
	touch $@

install: $(STAMP)

# Everything, slow tests included; pytest goes on past a failure and reports them all.
test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

# The inner loop: no slow tests, and stop at the first failure.
test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -x -m "not slow"

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

bench: $(STAMP)
	$(BIN)/python scripts/bench.py

bench-peers: $(BENCH_STAMP)
	$(BIN)/python scripts/bench_peers.py

# What the SQLite store's one-hop transactions (aiosqlite's private _execute) are worth.
bench-hops: $(STAMP)
	$(BIN)/python scripts/bench_hops.py

soak: $(TEST_STAMP)
	$(BIN)/python scripts/soak.py

lint: $(TEST_STAMP)
	$(BIN)/ruff check queuectl tests scripts
	$(BIN)/ruff format --check queuectl tests scripts
	$(BIN)/mypy --strict queuectl

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis bench
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
