"""The regeneration check: rerun the pipeline from the committed code and params in a clean clone and
compare the metrics it makes with the committed ``metrics/*.json``.

Every metric must come back identical unless ``tolerances.yaml`` allows it to move; a mismatch names
the file, the metric and how far it moved.
"""

import fnmatch
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from seqnlp import layout
from seqnlp.errors import UserError
from seqnlp.params import own_data_paths

TOLERANCES = Path("tolerances.yaml")
DVC = [sys.executable, "-m", "dvc"]


def flatten(tree, prefix=""):
    """``{"a": {"b": 1}, "c": [2]}`` as ``{"a.b": 1, "c.0": 2}``: one entry per metric."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, list):
        items = enumerate(tree)
    else:
        return {prefix: tree}
    flat = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def load_tolerances(path=TOLERANCES):
    """``{metrics file: {metric pattern: absolute tolerance}}``; what is not listed must match exactly."""
    if not path.exists():
        return {}
    tolerances = yaml.safe_load(path.read_text()) or {}
    for file, patterns in tolerances.items():
        for pattern, tolerance in (patterns or {}).items():
            if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or tolerance < 0:
                raise UserError(f"{path}: {file}: {pattern}: a tolerance is a number >= 0, got {tolerance!r}")
    return tolerances


def tolerance_for(tolerances, file, metric):
    """The loosest tolerance whose pattern matches ``metric`` (fnmatch, on the dotted name), else 0."""
    matches = [tolerance for pattern, tolerance in (tolerances.get(file) or {}).items()
               if fnmatch.fnmatchcase(metric, pattern)]
    return max(matches, default=0)


@dataclass
class Mismatch:
    file: str
    metric: str
    committed: object
    regenerated: object
    tolerance: float

    def __str__(self):
        if self.committed is None or self.regenerated is None:
            state = "is new" if self.committed is None else "is missing from the regenerated metrics"
            return f"{self.file}: {self.metric} {state}"
        moved = ""
        if _is_number(self.committed) and _is_number(self.regenerated):
            moved = f" (moved {self.regenerated - self.committed:+.6g}, tolerance {self.tolerance:g})"
        return f"{self.file}: {self.metric}: committed {self.committed!r}, regenerated {self.regenerated!r}{moved}"


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare(file, committed, regenerated, tolerances):
    """Every metric of ``file`` that differs beyond its tolerance (new and missing metrics included)."""
    old, new = flatten(committed), flatten(regenerated)
    mismatches = []
    for metric in sorted(old.keys() | new.keys()):
        before, after = old.get(metric), new.get(metric)
        tolerance = tolerance_for(tolerances, file, metric)
        if _is_number(before) and _is_number(after):
            close = before == after or abs(after - before) <= tolerance
            if close and not (math.isnan(before) or math.isnan(after)):
                continue
        elif before == after and (metric in old) == (metric in new):
            continue
        mismatches.append(Mismatch(file, metric, before, after, tolerance))
    return mismatches


def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _cache_dir(root):
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return repo.cache.local_cache_dir


def _pipeline(root):
    """The stage names as dvc.yaml gives them (`train@topics`; `addressing` would be relative to the cwd)
    and the metrics files the stages write."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        stages = list(repo.index.stages)
        return [stage.name for stage in stages], sorted(out.def_path for stage in stages for out in stage.outs
                                                        if out.metric)


def _stages_of(names, tasks):
    known = {name.split("@")[-1] for name in names}
    unknown = sorted(set(tasks) - known)
    if unknown:
        raise UserError(f"no stage runs task(s) {', '.join(unknown)}; dvc.yaml's tasks are {', '.join(sorted(known))}")
    return [name for name in names if name.split("@")[-1] in tasks]


def _environment(clone):
    environment = dict(os.environ)
    # The stages call `seqnlp`, which lives beside this Python even when its folder is not on PATH; it must
    # run the clone's code, not the (editable) install's, which may hold uncommitted changes.
    environment["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environment.get("PATH", "")])
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(clone / "src"), environment.get("PYTHONPATH")]))
    mirror = environment.get("SEQNLP_DATA_MIRROR")
    if mirror:  # the clone lives elsewhere: a mirror given relative to this checkout must still be found
        environment["SEQNLP_DATA_MIRROR"] = str(Path(mirror).resolve())
    return environment


def _refuse_own_files_outside(clone):
    """A relative download.local path that leaves the repository names another file, or none, from the clone."""
    for dotted, path in own_data_paths(yaml.safe_load((clone / "params.yaml").read_text())):
        if not Path(path).expanduser().is_absolute() and not (clone / path).resolve().is_relative_to(clone):
            raise UserError(f"params.yaml: {dotted} is {path}, outside the repository, so a clean clone cannot "
                            "find it; give an absolute path, or keep the file in the repository and track it "
                            "with DVC (docs/adding-a-task.md#3-your-data)")


def regenerate(root, rev="HEAD", from_scratch=False, tasks=(), workdir=None, keep=False):
    """Clone ``rev`` of the repository at ``root`` into a clean workspace sharing its DVC cache, rerun the
    pipeline there (restoring unchanged stages from the run-cache unless ``from_scratch``) and return the
    metrics that moved, the metrics files compared, the seconds it took and the clone's path."""
    root = Path(root).resolve()
    try:
        commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}", cwd=root).strip()
    except subprocess.CalledProcessError:
        raise UserError(f"{rev!r} is not a commit of {root}") from None
    workspace = Path(workdir).resolve() if workdir else Path(tempfile.mkdtemp(prefix="seqnlp-regenerate-"))
    clone = workspace / "repo"
    if clone.exists():
        raise UserError(f"{clone} already exists: give another --workdir")
    started = time.monotonic()
    try:
        _git("clone", "--quiet", "--no-checkout", str(root), str(clone), cwd=root)
        _git("checkout", "--quiet", commit, cwd=clone)
        # One cache for both: the clone restores what the run-cache knows and adds what it makes.
        subprocess.run([*DVC, "cache", "dir", "--local", _cache_dir(root)], cwd=clone, check=True)
        _refuse_own_files_outside(clone)
        stage_names, metrics_files = _pipeline(clone)
        targets = _stages_of(stage_names, tasks) if tasks else []
        wanted = {str(layout.metrics(task)) for task in tasks}
        metrics_files = [file for file in metrics_files if not tasks or file in wanted]
        committed = {file: json.loads((clone / file).read_text()) for file in metrics_files if (clone / file).exists()}
        for file in committed:  # what is compared must come from a run (or its run-cache record), never from git
            (clone / file).unlink()
        command = [*DVC, "repro", *(["--force"] if from_scratch else []), *targets]
        shown = " ".join(["dvc", *command[3:]])
        print(f"regenerating {commit[:12]} in {clone}: {shown}", file=sys.stderr, flush=True)
        if subprocess.run(command, cwd=clone, env=_environment(clone)).returncode != 0:
            keep = True
            raise UserError(f"`{shown}` failed in {clone} (kept for a look)")
        tolerances = load_tolerances(clone / TOLERANCES)
        mismatches = [mismatch for file in metrics_files
                      for mismatch in compare(file, committed.get(file, {}), json.loads((clone / file).read_text()),
                                              tolerances)]
    finally:
        if not keep:
            shutil.rmtree(clone if workdir else workspace, ignore_errors=True)
    return mismatches, metrics_files, time.monotonic() - started, clone
