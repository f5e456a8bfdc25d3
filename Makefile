# Quick start: `make demo` (main job on the embedded default) and `make test`.
# Each creates .venv from nothing and installs the pinned requirements once.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp
RUN := $(VENV)/bin/python

# Two device-like environments for the edge runner tests: no TensorFlow in either.
EDGE_LITERT := .venv-edge-litert
EDGE_TFLITE_RUNTIME := .venv-edge-tflite-runtime

.PHONY: demo test install edge-venvs cluster-tools clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0] + ": run make PYTHON=python3.11 ..."'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade "pip>=23.2"
	$(VENV)/bin/pip install --quiet -c requirements.lock -e ".[test,cluster]"
	touch $(STAMP)

demo: $(STAMP)
	$(RUN) -m deeprx.study --flagfile=study.flags --preset=demo --workdir=runs/study-demo

# numpy and ai-edge-litert only (a host's interpreter); numpy < 2 and tflite-runtime 2.14
# (the runtime family of the Coral board; tflite-runtime 2.14 breaks with numpy 2).
edge-venvs: $(EDGE_LITERT)/.stamp $(EDGE_TFLITE_RUNTIME)/.stamp

$(EDGE_LITERT)/.stamp: requirements.lock
	$(PYTHON) -m venv $(EDGE_LITERT)
	$(EDGE_LITERT)/bin/pip install --quiet -c requirements.lock numpy ai-edge-litert
	touch $@

$(EDGE_TFLITE_RUNTIME)/.stamp:
	$(PYTHON) -m venv $(EDGE_TFLITE_RUNTIME)
	$(EDGE_TFLITE_RUNTIME)/bin/pip install --quiet "numpy==1.26.4" "tflite-runtime==2.14.0"
	touch $@

# The single-node Slurm of tests/test_backends.py (apt-get where root; elsewhere they skip).
cluster-tools:
	bash tests/install_cluster_tools.sh

# Two workers, a test file per worker at a time (module fixtures run once): most of a test's
# time is single-threaded (imports, tracing, subprocess start-up). One file: pytest tests/x.py.
test: $(STAMP) edge-venvs cluster-tools
	$(RUN) -m pytest -q -n 2 --dist loadfile --durations=25 tests

clean:
	rm -rf $(VENV) $(EDGE_LITERT) $(EDGE_TFLITE_RUNTIME) runs
