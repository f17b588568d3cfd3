"""The conda environment of the Snakemake rules (workflow/envs/seqnlp.yaml), made from requirements.lock so
that `--software-deployment-method conda` builds on a cluster node exactly what `make setup` builds here.

    python -m seqnlp.environment > workflow/envs/seqnlp.yaml
"""

import sys
from pathlib import Path

import yaml

LOCK = Path("requirements.lock")
PYTHON = "3.11"


def pins(lock_text):
    """The ``name==version`` lines of a lock file, in its order."""
    return [line.strip() for line in lock_text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def conda_environment(lock_text):
    """The environment file's text: conda-forge's Python and pip, then every pin of the lock through pip
    (the wheels are the ones `make setup` installs; conda's own builds of TensorFlow and jax differ)."""
    environment = {"channels": ["conda-forge"], "dependencies": [f"python={PYTHON}", "pip", {"pip": pins(lock_text)}]}
    header = ("# Generated from requirements.lock by `python -m seqnlp.environment`; do not edit by hand.\n"
              "# seqnlp.post-deploy.sh installs the checkout itself (the `seqnlp` command) into the environment.\n")
    return header + yaml.safe_dump(environment, sort_keys=False)


if __name__ == "__main__":
    sys.stdout.write(conda_environment(LOCK.read_text()))
