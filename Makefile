# The two commands of the README. Each creates .venv/ and installs the project when missing.
# The interpreter .venv is made with: the system's own Python 3 when it is >= 3.11 and has venv,
# else python3 from PATH. Debian's links the interpreter into its executable; the pyenv build on
# our machines calls it in libpython3.11.so, compiled without PGO, and spends 10-15% more CPU on
# the same work (bench/invoice_run.py --pdfs-only: 99-104 ms a PDF against 114-119; bench/ingest.py:
# 23.3 us of service CPU per event against 26.0). An existing .venv is kept: `rm -rf .venv` to switch.
SYSTEM_PYTHON := /usr/bin/python3
PYTHON ?= $(shell $(SYSTEM_PYTHON) -c 'import sys, ensurepip; assert sys.version_info >= (3, 11)' 2>/dev/null && echo $(SYSTEM_PYTHON) || echo python3)
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
