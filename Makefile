# One virtualenv for everything; `make test` is what CI runs (.ci/run) and what README documents.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv test lint format bench clean demo
DEMO_PORT ?= 9000
DEMO_ARGS ?=

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

test: venv lint
	$(PY) -m pytest

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: venv
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# The quick start: a local Feishu sandbox and a real errbot wired to it over the long
# connection (DEMO_ARGS=--webhook: by webhook); prints the page URL.
demo: venv
	$(PY) -m lark_cards sandbox --demo --port $(DEMO_PORT) $(DEMO_ARGS)

bench: venv
	$(PY) bench/ack.py
	$(PY) bench/render.py
	$(PY) bench/longconn.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis demo
