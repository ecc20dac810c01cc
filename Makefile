# Test tiers (see README.md). `make test` is what CI runs.
PYTHON ?= python3
PYTEST ?= $(PYTHON) -m pytest

.PHONY: install test lint typecheck unit integration bench demo clean

install:
	$(PYTHON) -m pip install -e '.[dev]'

lint:
	$(PYTHON) -m ruff check bundler installer tests bench
	$(PYTHON) -m ruff format --check bundler installer tests bench

typecheck:
	$(PYTHON) -m mypy

unit:
	$(PYTEST) tests/unit -q

# Needs root, docker (scripts/services.sh start) and the Ubuntu/Debian archives.
integration:
	$(PYTEST) tests/integration -q -m integration

test: lint typecheck
	$(PYTEST) tests -q -m 'integration or not integration'

bench:
	$(PYTHON) bench/run_all.py

# The whole flow without NVIDIA access (root, Debian archive): docs/demo.md
demo:
	PYTHON=$(PYTHON) scripts/demo.sh

clean:
	rm -rf .cache out .pytest_cache .mypy_cache .ruff_cache
