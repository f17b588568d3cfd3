"""A copy of the project that runs the whole pipeline on a small slice of the data in minutes: the
`.test/` configuration of the Snakemake workflow catalog, for users and for the end-to-end tests alike."""

import shutil
import subprocess
from pathlib import Path

import yaml

from seqnlp import variants
from seqnlp.params import own_data_paths
from seqnlp.errors import UserError

OVERRIDES = Path(".test/config/params.yaml")
# Results of a run, never copied: the slice makes its own.
GENERATED = ("dvc.lock", "metrics", "plots", "samples", "data", "models", "checkpoints", "logs", ".dvc/cache",
             ".dvc/tmp", ".test/run")


def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _own_files_found_from(params, source):
    """``params`` with each relative ``download.local`` path made absolute, naming the file in ``source``: the
    slice runs in another folder, and does not copy files that git ignores (DVC-tracked data among them)."""
    absolute = {dotted: str((source / path).resolve()) for dotted, path in own_data_paths(params)
                if not Path(path).expanduser().is_absolute()}
    return variants.apply_overrides(params, absolute, "download.local")


def make(destination, source=Path("."), overrides=OVERRIDES):
    """Copy ``source``'s files that git tracks or would track (its code and config, not its results) to
    ``destination``, set the params of ``overrides`` there and commit them in a git repository of its own,
    so that `dvc repro` and Snakemake run there as in a fresh clone. Returns ``destination``."""
    source, destination = Path(source).resolve(), Path(destination).resolve()
    if destination.exists() and any(destination.iterdir()):
        raise UserError(f"{destination} is not empty; the slice needs a new or empty folder")
    params = variants.apply_overrides(yaml.safe_load((source / "params.yaml").read_text()),
                                      yaml.safe_load((source / overrides).read_text()), overrides)
    for name in _git("ls-files", "--cached", "--others", "--exclude-standard", cwd=source).splitlines():
        if any(name == prefix or name.startswith(prefix + "/") for prefix in GENERATED):
            continue
        if (source / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, destination / name)
    (destination / "params.yaml").write_text(yaml.safe_dump(_own_files_found_from(params, source), sort_keys=False))
    _git("init", "-q", cwd=destination)
    _git("add", "-A", cwd=destination)
    _git("-c", "user.name=seqnlp", "-c", "user.email=seqnlp@localhost", "commit", "-qm",
         f"small slice: params.yaml with {overrides}", cwd=destination)
    return destination
