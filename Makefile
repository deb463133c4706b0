# Two entry points on a fresh machine: `make run` (the workflow on config.yaml) and
# `make test` (style checks, then the test suite). Both create the pinned virtual environment
# first.
# ARGS go to Snakemake, e.g. make run ARGS='--config "select={models: [simclr]}"'.
PYTHON ?= python3
VENV := .venv
CORES ?= $(shell nproc)
ARGS ?=

# Snakemake starts every script job as `<its own interpreter's path> <script>` without
# quoting the path, so a space in it splits the command. In a checkout whose path has a
# space, Snakemake and pytest run through a link to .venv in LINK_DIR (a path without one).
LINK_DIR ?= $(HOME)/.cache/chipbench/venv-links
ifeq ($(word 2,$(CURDIR)),)
VENV_PYTHON := $(VENV)/bin/python
else
ifneq ($(word 2,$(LINK_DIR)),)
$(error this checkout's path has a space, and so has LINK_DIR ($(LINK_DIR)): run make LINK_DIR=<a folder without spaces>)
endif
VENV_LINK := $(LINK_DIR)/$(shell printf '%s' '$(CURDIR)' | cksum | cut -d' ' -f1)
VENV_PYTHON := $(VENV_LINK)/bin/python
endif

.PHONY: setup run lint test

setup: $(VENV)/.installed
ifdef VENV_LINK
	mkdir -p "$(LINK_DIR)"
	ln -sfn "$(CURDIR)/$(VENV)" "$(VENV_LINK)"
endif

# Bytecode is compiled here, on every core (pip's own pass uses one: 64 s in all -> 33 + 20 s
# on 2 cores), and not left to the first import: where PYTHONDONTWRITEBYTECODE is set, that
# import never caches it, and every job would compile torch and pandas again (3.7 s -> 1.5 s
# and 1.6 s -> 0.3 s to import). compileall's status is ignored: a few files in the packages
# are not meant for this Python (e.g. torch's py312_intrinsics.py) and fail, as under pip.
# The packages' own test suites (*/tests/, a quarter of the files: pandas, sympy, scipy...)
# are never imported and are left out (48 -> 36 s of CPU time).
$(VENV)/.installed: envs/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --no-compile -r envs/requirements.txt
	$(VENV)/bin/python -m compileall -q -j 0 -x '/tests/' $(VENV)/lib >/dev/null || true
	touch $@

run: setup
	"$(VENV_PYTHON)" -m snakemake --cores $(CORES) $(ARGS)

# snakefmt and Snakemake's own linter; the linter parses the workflow in an empty folder, so
# it leaves nothing in this checkout.
lint: setup
	"$(VENV_PYTHON)" -m snakefmt --check Snakefile rules/
	d=$$(mktemp -d) && "$(VENV_PYTHON)" -m snakemake -s Snakefile --directory "$$d" --lint; \
	  status=$$?; rm -rf "$$d"; exit $$status

test: lint
	"$(VENV_PYTHON)" -m pytest $(ARGS)
