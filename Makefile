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

# --no-compile: modules are compiled when first imported, not every module of every package
# at install (measured: 79 s -> 33 s on 2 cores)
$(VENV)/.installed: envs/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --no-compile -r envs/requirements.txt
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
