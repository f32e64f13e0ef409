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

# What passes mypy --strict, named so that it stays so: every package pyproject.toml ships (bench/
# and tests/ are not checked). A new package joins this list with its first commit.
MYPY_STRICT := actors cli forecasting infra invoicing notifications payments pricing serve templates

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m mypy --strict $(MYPY_STRICT)

# Known vulnerabilities in the installed dependencies (pip-audit, PyPI's advisory data). Exits 0
# only when every dependency was checked and none is vulnerable; 1 on vulnerabilities; non-zero
# with "audit: could not audit ..." when no advisory source answered for some (pip-audit alone
# would print "No known vulnerabilities found" then). Flags for pip-audit: AUDIT_FLAGS='-s osv'.
AUDIT_FLAGS ?=
audit: $(STAMP)
	$(VENV)/bin/python infra/dependency_audit.py $(AUDIT_FLAGS)
