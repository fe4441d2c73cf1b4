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

.PHONY: install demo test browser
install: $(VENV)/.installed

# The dashboard's browser test drives Debian's chromium with chromedriver
# (Playwright's own browser download is not available on these hosts).
# Installed only when missing and only as root; else that one test skips.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver \
	  || echo "note: could not install chromium; the browser test will be skipped"; \
	else echo "note: chromium and chromedriver missing and not root; the browser test will be skipped"; fi

demo: $(VENV)/.installed
	$(VENV)/bin/corral run examples/poetry/poetry.py

# The tests mostly wait on real processes, so three run at once even on 2
# cores (pytest-xdist); TEST_JOBS=0 runs them one by one.
TEST_JOBS ?= 3

test: $(VENV)/.installed browser
	$(PY) -m pytest -q -n $(TEST_JOBS)
