# The two commands of the README: `make demo` (set up, then run lbsearch on a sample) and
# `make test` (set up, then lint, type-check and run the tests). Both create .venv on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch 2.13.0 is a CPU build where a local wheel is provided; elsewhere pip picks the platform's.
TORCH ?= torch==2.13.0

.PHONY: demo test check lint typecheck pytest clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(PY) tools/demo.py

test: $(VENV)/.installed
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache
