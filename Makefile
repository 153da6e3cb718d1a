PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: install test demo lint clean bench bench-peers soak

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e . --config-settings editable_mode=compat
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]' --config-settings editable_mode=compat
	touch $@

install: $(STAMP)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

bench: $(STAMP)
	$(BIN)/python scripts/bench.py

bench-peers: $(BENCH_STAMP)
	$(BIN)/python scripts/bench_peers.py

soak: $(TEST_STAMP)
	$(BIN)/python scripts/soak.py

lint: $(TEST_STAMP)
	$(BIN)/ruff check queuectl tests scripts
	$(BIN)/ruff format --check queuectl tests scripts

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis bench
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
