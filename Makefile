# The two commands of the README. Each creates .venv/ and installs the project when missing.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint up

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
