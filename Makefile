# Test tiers (see README.md). `make test` is what CI runs.
# The developer install lives in .venv (PEP 668 forbids pip into Debian's/Ubuntu's python3);
# once it exists every target uses it, under sudo too.
VENV ?= .venv
PYTHON ?= $(if $(wildcard $(VENV)/bin/python),$(VENV)/bin/python,python3)
PYTEST ?= $(PYTHON) -m pytest
# The slow tiers on two pytest-xdist workers: each test module is one unit of work, every
# test marked `docker` one more (they share the dockerd): tests/conftest.py xdist_group_of.
# JOBS=1 runs them in one process.
JOBS ?= 2
PARALLEL = $(if $(filter 1,$(JOBS)),,-n $(JOBS) --dist loadgroup)

.PHONY: install deps fixtures test lint typecheck unit integration bench demo clean

install:
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -e '.[dev]'

# The Debian/Ubuntu packages the tests and the demo need (root): scripts/deps.sh.
deps:
	bash scripts/deps.sh

# NVIDIA's published metadata for the tests: ../shared/fixtures/nvidia, or fetched by
# pinned hash into .cache/nvidia-fixtures (tests/support/nvidia_fixtures.py).
fixtures:
	$(PYTHON) -m tests.support.nvidia_fixtures

lint:
	$(PYTHON) -m ruff check bundler installer tests bench ansible
	$(PYTHON) -m ruff format --check bundler installer tests bench ansible

# installer/ also as Python 3.8 sees it (the oldest target python3): scripts/typecheck-py38.
typecheck:
	$(PYTHON) -m mypy
	bash scripts/typecheck-py38

unit: fixtures
	$(PYTEST) tests/unit -q

# Needs root, `make deps` and the Ubuntu/Debian archives. dockerd and the loopback
# registry are started for the run and stopped after it, unless they were running.
integration: fixtures
	bash scripts/services.sh run -- $(PYTEST) tests/integration -q -m integration $(PARALLEL)

test: lint typecheck fixtures
	bash scripts/services.sh run -- $(PYTEST) tests -q -m 'integration or not integration' $(PARALLEL) --durations=25

bench:
	$(PYTHON) bench/run_all.py

# The whole flow without NVIDIA access (root, Debian archive): docs/demo.md
demo:
	PYTHON=$(PYTHON) scripts/demo.sh

clean:
	rm -rf .cache out .pytest_cache .mypy_cache .ruff_cache
