# Two entry points: `make repro` sets up the environment (once) and runs the whole pipeline;
# `make test` sets it up (once) and runs the tests. Both work offline with SEQNLP_DATA_MIRROR set.
PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup repro test regenerate benchmark

setup: $(INSTALLED)

$(INSTALLED): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "seqnlp needs Python 3.11 (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-*
	touch $@

repro: setup
	dvc repro

test: setup
	pytest

# Rerun the pipeline in a clean clone of HEAD (run-cache reuse; REGENERATE_FLAGS=--from-scratch reruns all)
# and check the metrics it makes against the committed ones.
regenerate: setup
	seqnlp regenerate $(REGENERATE_FLAGS)

benchmark: setup
	python benchmarks/pipeline.py
	python benchmarks/generate.py
