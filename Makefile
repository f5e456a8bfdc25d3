# Quick start: `make demo` (main job on the embedded default) and `make test`.
# Each creates .venv from nothing and installs the pinned requirements once.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp
RUN := $(VENV)/bin/python

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0] + ": run make PYTHON=python3.11 ..."'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade "pip>=23.2"
	$(VENV)/bin/pip install --quiet -c requirements.lock -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(RUN) -m deeprx.evaluate --preset=demo --receivers=ls_lmmse,perfect_lmmse --out=runs/demo

test: $(STAMP)
	$(RUN) -m pytest -q tests

clean:
	rm -rf $(VENV) runs
