"""What the end-to-end modules share: running the commands as a user would, and the small slice
(.test/config/params.yaml) run once per test session by `dvc repro`, committed, and pushed with its run-cache
to the default DVC remote.

test_pipeline_end_to_end.py reads and runs commands in that run, test_cluster_end_to_end.py restores it on a
real SLURM, and test_clones_end_to_end.py clones it. Under pytest-xdist the modules run on different
workers; the first worker that needs the run makes it while the others wait on a file lock, and then only
read it or clone it (the commands run inside it belong to one module)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from conftest import MIRROR, REPO
from seqnlp import small_slice

NER_TASKS = ("ner_gmb", "ner_conll")
TASKS = ("topics", "shakespeare", *NER_TASKS, "questions")
COMPUTED_ON_SLURM = "topics"  # the task the cluster module computes; it restores the others from the DVC run
SNAKEMAKE = ["snakemake", "-s", "workflow/Snakefile", "--profile", "workflow/profiles/default"]

GIT_IDENTITY = {f"GIT_{role}_{field}": value for role in ("AUTHOR", "COMMITTER")
                for field, value in (("NAME", "test"), ("EMAIL", "test@localhost"))}  # for GTO's annotated tags


def environment():
    return {**GIT_IDENTITY, **os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "SEQNLP_DATA_MIRROR": str(MIRROR)}


def run(command, cwd, stdin=None, expect=0):
    result = subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True, input=stdin)
    assert result.returncode == expect, \
        f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout if expect == 0 else result.stderr


def snakemake_log(command, cwd, env=None, expect=0):
    """What Snakemake printed (it logs to stderr); a timeout, not a hang, if a failed job goes unnoticed."""
    result = subprocess.run(command, cwd=cwd, env={**environment(), **(env or {})}, capture_output=True, text=True,
                            timeout=1800)
    assert result.returncode == expect, f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-5000:]}"
    return result.stdout + result.stderr


def jobs_run(log):
    """The rules of the jobs a Snakemake run started, from its job stats table."""
    table = log.split("Job stats:")[1].split("\ntotal")[0]
    return set(re.findall(r"^(\w+)\s+\d+$", table, re.MULTILINE))


def small_copy(destination):
    """The project's code and config (not its results) with the params of .test/config/params.yaml."""
    return small_slice.make(destination, source=REPO)


def git_commit(root, message):
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", message], root)


def clone_sharing_the_cache(source, destination):
    run(["git", "clone", "-q", str(source), str(destination)], destination.parent)
    run(["dvc", "cache", "dir", "--local", str(source / ".dvc" / "cache")], destination)
    return destination


def remote_folder(root):
    """The folder of the repository's default DVC remote (the committed .dvc/config names it relatively)."""
    _, url = run(["dvc", "remote", "list"], root).split()[:2]  # "(default)" follows, on a line of its own
    return (root / ".dvc" / url).resolve()                        # when the path is long


def session_folder(tmp_path_factory):
    """A folder that every worker of this test session shares (pytest's base folder in a single process)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def slice_run_made_once(tmp_path_factory, needed="made"):
    """The small slice run by `dvc repro`, committed, and pushed with its run-cache to the default remote (the
    committed .dvc/config's folder beside the repository, so a clone made beside it pulls from it). Made by
    the first caller of the session; a failure is reported to every later caller instead of being repeated.

    The run first reproduces every task but COMPUTED_ON_SLURM, then the rest: ``needed="seedable"`` returns
    as soon as the first part is done, so that the cluster module, which seeds its run with those stages and
    computes the rest itself, starts while the DVC run finishes."""
    shared = session_folder(tmp_path_factory)
    root = shared / "slice" / "run"
    markers = {state: shared / f"slice-run.{state}" for state in ("seedable", "made", "failed")}
    lock = FileLock(shared / "slice-run.lock")
    while True:
        if markers["failed"].exists():
            failure = markers["failed"].read_text()
            pytest.fail(f"the small slice run failed (in the first test that needed it):\n{failure}")
        if markers["made"].exists() or markers[needed].exists():
            return root
        try:
            with lock.acquire(timeout=2):  # held while a worker makes the run; a waiting one polls the markers
                if not markers["made"].exists() and not markers["failed"].exists():
                    _make_slice_run(root, markers)
        except Timeout:
            pass


def _make_slice_run(root, markers):
    try:
        small_copy(root)
        run(["dvc", "repro", "--glob", *(f"*@{task}" for task in TASKS if task != COMPUTED_ON_SLURM)], root)
        markers["seedable"].touch()
        run(["dvc", "repro"], root)
        git_commit(root, "results of the small slice")
        run(["dvc", "push", "--run-cache"], root)
    except Exception as error:
        markers["failed"].write_text(str(error)[-8000:])
        raise
    markers["made"].touch()
