import os
import signal
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


def let_ctrl_c_through():
    """A shell without job control starts background commands (`make test &`, `nohup ... &`) with SIGINT
    ignored, and every process inherits that: Ctrl-C could then not reach the servers and trainers the tests
    start, and the tests of what Ctrl-C does would fail for where the suite was started. A handler of this
    process's own is reset to the default in each program it starts."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


let_ctrl_c_through()

# The modules that take longest, longest first: pytest-xdist hands whole modules to its workers in collection
# order (pyproject.toml's addopts). The first makes the small slice run, which the cluster module waits for on a
# second worker until all but the task it computes are done (its SLURM jobs then mostly sleep between status
# checks), while the third runs the rest of the suite, reaching the clone and regeneration modules, which also
# need the run, about when the run is made.
LONGEST_FIRST = ("test_pipeline_end_to_end.py", "test_cluster_end_to_end.py", "test_training_trust.py",
                 "test_layers.py", "test_trained.py", "test_clones_end_to_end.py", "test_regenerate_end_to_end.py",
                 "test_benchmarks.py")


def pytest_xdist_auto_num_workers(config):
    """Workers for `--numprocesses auto` (pyproject.toml): the two cores for the inner loop (`-m "not slow"`),
    whose tests all compute; a third for the whole suite, whose cluster module mostly waits."""
    return 2 if "not slow" in (config.option.markexpr or "") else 3


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: LONGEST_FIRST.index(item.path.name) if item.path.name in LONGEST_FIRST
               else len(LONGEST_FIRST))


@pytest.fixture
def mirror(monkeypatch):
    """The real data mirror, as CI and the developers' machines have it."""
    assert (MIRROR / "PROVENANCE.md").exists(), f"no data mirror at {MIRROR}; set SEQNLP_DATA_MIRROR"
    monkeypatch.setenv("SEQNLP_DATA_MIRROR", str(MIRROR))
    return MIRROR


@pytest.fixture
def row_reads(monkeypatch):
    """The (offset, count) of every read from a token file, in order: to check what a stage reads."""
    from seqnlp import artifacts

    reads, read_part = [], artifacts.read_part

    def counted(file, offset, count, *rest):
        reads.append((offset, count))
        return read_part(file, offset, count, *rest)

    monkeypatch.setattr(artifacts, "read_part", counted)
    return reads


@pytest.fixture(scope="session")
def slice_run(tmp_path_factory):
    """The small slice run by `dvc repro`, committed and pushed: made once per session (tests/end_to_end.py)."""
    import end_to_end

    return end_to_end.slice_run_made_once(tmp_path_factory)
