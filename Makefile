# `make demo` (set up, then run lbsearch on a sample) and `make test` (set up, then every check:
# formatting, lint, import layers, types, tests). Both create .venv on first use.
# Single steps: lint, fix, typecheck, pytest, smoke, test-slow, snapshot-update.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch 2.13.0 is a CPU build where a local wheel is provided; elsewhere pip picks the platform's.
TORCH ?= torch==2.13.0

.PHONY: demo test lint fix typecheck pytest smoke test-slow snapshot-update clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test,ray]"
	touch $@

demo: $(VENV)/.installed
	$(PY) tools/demo.py

# Everything CI checks (.ci/run runs exactly this).
test: lint typecheck pytest smoke

# Formatting, lint rules and the import layers of pyproject.toml's [tool.importlinter].
lint: $(VENV)/.installed
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) tools/lint_imports.py

# What can be repaired automatically: formatting, fixable lint, the packaged copy of config.toml.
fix: $(VENV)/.installed
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .
	cp config.toml lbsearch/defaults.toml

typecheck: $(VENV)/.installed
	$(PY) -m mypy

# The default selection (under 10 minutes on 2 cores), the slow tests (marker `slow`, about 5
# minutes), then the tests on a local Ray cluster (marker `ray`, a few minutes).
pytest: $(VENV)/.installed
	$(PY) -m pytest
	$(PY) -m pytest -m slow
	$(PY) -m pytest -m ray

# The wheel as a user gets it: built from the sources, installed into a fresh venv (torch first),
# then index, query, status, embed, serve and browse --help run from a folder holding decoys
# named lbsearch, cli and indexers, with tiny checkpoints (tools/smoke_wheel.py).
smoke: $(VENV)/.installed
	$(PY) tools/smoke_wheel.py --torch "$(TORCH)"

# The slow tests alone (kill loops, timeouts, exports, big corpora; deselected by default).
test-slow: $(VENV)/.installed
	$(PY) -m pytest -m slow

# Re-render the TUI snapshots after a deliberate UI change; review the diff before committing.
snapshot-update: $(VENV)/.installed
	$(PY) -m pytest tests/test_tui_snapshots.py --snapshot-update

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache
