#!/usr/bin/env bash
# Snakemake runs this in the new environment from the workflow's working directory, the checkout: the rules
# call `seqnlp`, which is this project, installed without touching the pins of seqnlp.yaml.
set -euo pipefail
pip install --no-deps --no-build-isolation -e .
