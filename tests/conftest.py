import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("SEQNLP_DATA_MIRROR", REPO.parent / "shared" / "data")).resolve()


def share_compiled_programs():
    """One XLA compilation cache, kept in pytest's cache folder, for this process and every `seqnlp` process the
    tests start: the suite trains and exports the same tiny models many times, and compiling them took most
    of each run. A program is found by its own text and jax's version, never by its name, and XLA's compiler
    is deterministic, so a cached program computes the same bits (the exact-resume tests check it). CI starts
    from a clean clone: its first run compiles everything once."""
    folder = REPO / ".pytest_cache" / "xla"
    folder.mkdir(parents=True, exist_ok=True)
    # jax reads these when it is imported, here and in every child process.
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(folder))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    # A size limit turns on jax's file lock around each read and write: without it, a process could read an
    # entry that another one (a parallel Snakemake job) is still writing.
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 * 1024**3))


share_compiled_programs()

# The modules that take longest, longest first: pytest-xdist hands whole modules to its workers in collection
# order (pyproject.toml's addopts), so the end-to-end runs start at once and the rest of the suite runs beside them.
LONGEST_FIRST = ("test_pipeline_end_to_end.py", "test_training_trust.py", "test_trained.py", "test_benchmarks.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: LONGEST_FIRST.index(item.path.name) if item.path.name in LONGEST_FIRST
               else len(LONGEST_FIRST))


@pytest.fixture
def mirror(monkeypatch):
    """The real data mirror, as CI and the developers' machines have it."""
    assert (MIRROR / "PROVENANCE.md").exists(), f"no data mirror at {MIRROR}; set SEQNLP_DATA_MIRROR"
    monkeypatch.setenv("SEQNLP_DATA_MIRROR", str(MIRROR))
    return MIRROR
