# Two entry points: `make repro` sets up the environment (once) and runs the whole pipeline;
# `make test` sets it up (once) and runs the tests. Both work offline with SEQNLP_DATA_MIRROR set.
PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup cluster-packages browser-packages repro test slice regenerate benchmark

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

# Debian's SLURM and munge, for the end-to-end test that runs the pipeline on a single-node cluster
# (installed once; as root, or through sudo).
cluster-packages:
	@test -x /usr/sbin/slurmctld -a -x /usr/sbin/slurmd -a -x /usr/sbin/munged -a -x /usr/bin/sbatch || { \
	  sudo=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge; }

# Debian's Chromium and its WebDriver, for the test that drives the page of `seqnlp serve` in a real browser.
browser-packages:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || { \
	  sudo=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

test: setup cluster-packages browser-packages
	pytest

# The whole pipeline on the small slice of .test/config/params.yaml, in a copy under .test/run (minutes).
slice: setup
	rm -rf .test/run
	seqnlp slice .test/run
	cd .test/run && snakemake --profile workflow/profiles/default

# Rerun the pipeline in a clean clone of HEAD (run-cache reuse; REGENERATE_FLAGS=--from-scratch reruns all)
# and check the metrics it makes against the committed ones.
regenerate: setup
	seqnlp regenerate $(REGENERATE_FLAGS)

benchmark: setup
	python benchmarks/pipeline.py
	python benchmarks/generate.py
	python benchmarks/recurrent.py
