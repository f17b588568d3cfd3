"""Wall time and peak memory of each pipeline stage, then the time of a no-op `dvc repro` (goal: <= 3 s).

    python benchmarks/pipeline.py            # measures the stages that are out of date, then the no-op
    python benchmarks/pipeline.py --fresh    # deletes data/ and models/ and forces every stage to run

Run from the repository root with the environment set up (`make setup`) and, offline,
SEQNLP_DATA_MIRROR pointing at the data mirror. Each stage runs through `dvc repro --single-item`,
so the timings include what a user waits for: start-up, imports and DVC's own bookkeeping. The peak
memory is the largest resident set of any process the stage ran (the stage's command, or DVC itself),
the figure that `workflow/resources.yaml` sizes each stage's `mem_mb` from; beside both, what that file
declares for the stage, and a `!` where a measurement exceeds it.
"""

import argparse
import shutil
import subprocess
import sys
import time
import warnings

from seqnlp import resources


# Linux starts a new process's peak resident set (ru_maxrss) at the high-water mark of the process that
# forked it, kept even after that one freed the memory: measured from a caller that had grown (scaling.py
# after writing 16x GMB: 2.3 GB), every stage would report at least the caller's peak. So the command runs
# under this small process, which reports the peak of what it ran and nothing of its own.
_PEAK_OF_CHILDREN = """
import resource, subprocess, sys
returncode = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(returncode)
"""


def measured(command, cwd=None):
    """Wall seconds and peak resident MB of ``command`` (run in ``cwd``) and every process it waited for."""
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", _PEAK_OF_CHILDREN, *command], cwd=cwd, stdout=subprocess.PIPE,
                         text=True)
    wall = time.perf_counter() - started
    if run.returncode:
        raise subprocess.CalledProcessError(run.returncode, command)
    return wall, int(run.stdout) / 1024  # Linux reports kilobytes


def stages_in_order(project=".", task=None):
    """The stages of ``project`` (of ``task`` alone if given), each after the stages it needs (DVC's graph;
    `dvc stage list` orders them as dvc.yaml declares them, which is not an order they can run in)."""
    import networkx
    from dvc.repo import Repo

    with Repo(str(project)) as repo, warnings.catch_warnings():
        # DVC's graph builder uses pygtrie's deprecated `.value` (DVC 3's, not ours to change)
        warnings.filterwarnings("ignore", "_NoneStep.value", DeprecationWarning)
        graph = repo.index.graph  # an edge from each stage to a stage it needs
        return [stage.name for stage in reversed(list(networkx.topological_sort(graph)))
                if task is None or stage.name.endswith(f"@{task}")]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fresh", action="store_true",
                        help="delete data/ and models/ and force every stage to run (no run-cache)")
    parser.add_argument("--noop-runs", type=int, default=3, help="how many no-op `dvc repro` runs to time")
    args = parser.parse_args()
    if args.fresh:
        for directory in ("data", "models"):
            shutil.rmtree(directory, ignore_errors=True)
    stages = stages_in_order()
    print(f"{'stage':<24} {'wall s':>8} {'peak MB':>8}   declared: {'runtime s':>9} {'mem_mb':>7}")
    started = time.perf_counter()
    for stage in stages:
        wall, peak = measured(["dvc", "repro", "--single-item", *(["--force"] if args.fresh else []), stage])
        declared = resources.declared(stage)
        over = "!" if wall > 60 * declared["runtime"] or peak > declared["mem_mb"] else ""
        print(f"{stage:<24} {wall:>8.1f} {peak:>8.0f}             {60 * declared['runtime']:>9} "
              f"{declared['mem_mb']:>7} {over}", flush=True)
    print(f"{'all stages':<24} {time.perf_counter() - started:>8.1f}")
    noop = [measured(["dvc", "repro"])[0] for _ in range(args.noop_runs)]
    print(f"{'no-op dvc repro':<24} {min(noop):>8.2f}  (best of {len(noop)}; goal <= 3 s)")


if __name__ == "__main__":
    main()
