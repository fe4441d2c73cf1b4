# Two commands for a fresh machine (Python 3.11 with venv, and make):
#   make demo   installs corral into .venv and runs the fast poetry example
#   make test   installs corral with its test extras into .venv and runs the tests
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

.PHONY: install demo test
install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/corral run examples/poetry/poetry.py

test: $(VENV)/.installed
	$(PY) -m pytest -q
