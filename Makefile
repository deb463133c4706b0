# Two entry points on a fresh machine: `make run` (the workflow on config.yaml) and
# `make test` (the test suite). Both create the pinned virtual environment first.
PYTHON ?= python3
VENV := .venv
CORES ?= $(shell nproc)

.PHONY: setup run test

setup: $(VENV)/.installed

$(VENV)/.installed: envs/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r envs/requirements.txt
	touch $@

run: setup
	$(VENV)/bin/snakemake --cores $(CORES)

test: setup
	$(VENV)/bin/python -m pytest
