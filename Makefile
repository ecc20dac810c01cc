# Test tiers (see README.md). `make test` is what CI runs.
# The developer install lives in .venv (PEP 668 forbids pip into Debian's/Ubuntu's python3);
# once it exists every target uses it, under sudo too.
VENV ?= .venv
PYTHON ?= $(if $(wildcard $(VENV)/bin/python),$(VENV)/bin/python,python3)
PYTEST ?= $(PYTHON) -m pytest

.PHONY: install fixtures test lint typecheck unit integration bench demo clean

install:
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -e '.[dev]'

# NVIDIA's published metadata for the tests: ../shared/fixtures/nvidia, or fetched by
# pinned hash into .cache/nvidia-fixtures (tests/support/nvidia_fixtures.py).
fixtures:
	$(PYTHON) -m tests.support.nvidia_fixtures

lint:
	$(PYTHON) -m ruff check bundler installer tests bench
	$(PYTHON) -m ruff format --check bundler installer tests bench

typecheck:
	$(PYTHON) -m mypy

unit: fixtures
	$(PYTEST) tests/unit -q

# Needs root, docker (scripts/services.sh start) and the Ubuntu/Debian archives.
integration: fixtures
	$(PYTEST) tests/integration -q -m integration

test: lint typecheck fixtures
	$(PYTEST) tests -q -m 'integration or not integration'

bench:
	$(PYTHON) bench/run_all.py

# The whole flow without NVIDIA access (root, Debian archive): docs/demo.md
demo:
	PYTHON=$(PYTHON) scripts/demo.sh

clean:
	rm -rf .cache out .pytest_cache .mypy_cache .ruff_cache
