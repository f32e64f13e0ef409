# The two commands of the README. Each creates .venv/ and installs the project when missing.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint up audit

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/billing demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests

up: $(STAMP)
	$(VENV)/bin/billing up

bench: $(STAMP)
	$(VENV)/bin/python bench/ingest.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m mypy --strict pricing

# Known vulnerabilities in the installed dependencies (PyPI's advisory data); fails on any.
# The project itself is installed editable and is not on PyPI, hence --skip-editable. A package
# PyPI's per-version JSON API does not answer for is listed as "could not be audited" and passes;
# `make audit AUDIT_FLAGS=--strict` fails on those too, where that API is reachable.
AUDIT_FLAGS ?=
audit: $(STAMP)
	$(VENV)/bin/pip-audit --skip-editable --progress-spinner off $(AUDIT_FLAGS)
