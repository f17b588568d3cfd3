"""Wall time of each pipeline stage, then of a no-op `dvc repro` (goal: <= 3 s).

    python benchmarks/pipeline.py            # times the stages that are out of date, then the no-op
    python benchmarks/pipeline.py --fresh    # deletes data/ and models/ first, so every stage runs

Run from the repository root with the environment set up (`make setup`) and, offline,
SEQNLP_DATA_MIRROR pointing at the data mirror. Each stage runs through `dvc repro --single-item`,
so the timings include what a user waits for: start-up, imports and DVC's own bookkeeping.
"""

import argparse
import shutil
import subprocess
import time


def timed(command):
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fresh", action="store_true", help="delete data/ and models/ so that every stage runs")
    parser.add_argument("--noop-runs", type=int, default=3, help="how many no-op `dvc repro` runs to time")
    args = parser.parse_args()
    if args.fresh:
        for directory in ("data", "models"):
            shutil.rmtree(directory, ignore_errors=True)
    stages = [line.split()[0] for line in subprocess.run(["dvc", "stage", "list"], check=True, capture_output=True,
                                                         text=True).stdout.splitlines()]
    print(f"{'stage':<24} {'wall s':>8}")
    for stage in stages:
        print(f"{stage:<24} {timed(['dvc', 'repro', '--single-item', stage]):>8.1f}", flush=True)
    noop = [timed(["dvc", "repro"]) for _ in range(args.noop_runs)]
    print(f"{'no-op dvc repro':<24} {min(noop):>8.2f}  (best of {len(noop)}; goal <= 3 s)")


if __name__ == "__main__":
    main()
