"""How each stage's cost grows with the data: wall time and peak memory at 1x, 4x and 16x the mirror's rows.

    python benchmarks/scaling.py [--task topics questions] [--factors 1 4 16] [--steps 20] [--workdir DIR]
    python benchmarks/scaling.py --task questions --factors 1 --pairs 404276   # one run at the full QQP size

For each task and size, benchmarks/scale_data.py writes the task's inputs (the mirror's rows with seeded
word-level perturbations: FOR COST ONLY, never a quality number), and a copy of this project (as `seqnlp slice`
makes one) gets params.yaml with ``download.local`` pointing at them and training cut to ``--steps`` steps.
Then every stage of the task runs through `dvc repro --single-item`, timed as benchmarks/pipeline.py times
it: wall seconds and the peak resident set of any process the stage ran, start-up and imports included.
For questions, benchmarks/similar.py then times `seqnlp similar` queries against the index of that size.

Prints a row per stage and size, then per stage the fitted growth exponent k of time ∝ n^k and of memory
(least squares on log-log; k = 1 is linear), and writes a log-log plot per task (``--plots``, PNG). Training
runs a fixed number of steps at every size, so its k is how its time and memory grow with the data it
streams (0 is the goal). Nothing is written into this checkout: the copies live in ``--workdir``.
"""

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

import scale_data
from pipeline import measured, stages_in_order
from seqnlp import small_slice

REPO = Path(__file__).resolve().parents[1]


def growth_exponent(factors, values):
    """The slope of log(value) on log(factor) by least squares; None with fewer than two sizes."""
    if len(factors) < 2:
        return None
    xs, ys = [math.log(factor) for factor in factors], [math.log(max(value, 1e-9)) for value in values]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    return (sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
            / sum((x - mean_x) ** 2 for x in xs))


def project_for(task, factor, steps, folder, mirror, pairs=None):
    """A copy of this project in ``folder`` whose ``task`` reads the scaled files and trains ``steps`` steps."""
    overrides = scale_data.write(task, mirror, folder / "data", factor, pairs=pairs)
    overrides.update({f"{task}.train.{key}": steps for key in ("steps", "checkpoint_every", "eval_every")})
    overrides[f"{task}.train.eval_batches"] = 1
    overrides_file = folder / "overrides.yaml"
    overrides_file.write_text(yaml.safe_dump(overrides, sort_keys=False))
    return small_slice.make(folder / "repo", source=REPO, overrides=overrides_file)


def similar_queries(project):
    """benchmarks/similar.py in ``project``: `seqnlp similar`'s encoding and search against its index."""
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "similar.py"), "--runs", "20"], cwd=project,
                          check=True, capture_output=True, text=True).stdout.splitlines()


def plot(task, factors, measurements, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogFormatter, NullFormatter

    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for stage, rows in measurements.items():
        name = stage.split("@")[0]
        time_axis.plot(factors, [wall for wall, _ in rows], marker="o", label=name)
        memory_axis.plot(factors, [peak for _, peak in rows], marker="o", label=name)
    for axis, label in ((time_axis, "wall time (s)"), (memory_axis, "peak resident memory (MB)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xticks(factors, [f"{factor}x" for factor in factors])
        axis.xaxis.set_minor_formatter(NullFormatter())
        for formatter in (axis.yaxis.set_major_formatter, axis.yaxis.set_minor_formatter):
            formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.4)))  # "2000", not "2x10^3"
        axis.set_xlabel("size of the data (times the mirror's rows)")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
    handles, labels = time_axis.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    figure.suptitle(f"{task}: each stage's cost against the size of its data (scaled copies, for cost only)")
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", nargs="+", choices=scale_data.TASKS, default=list(scale_data.TASKS))
    parser.add_argument("--factors", nargs="+", type=int, default=[1, 4, 16],
                        help="sizes, in times the mirror's rows (default 1 4 16)")
    parser.add_argument("--pairs", type=int, help="questions only: this many pairs in all instead of the factor")
    parser.add_argument("--steps", type=int, default=20, help="training steps at every size (default 20)")
    parser.add_argument("--workdir", type=Path, help="where the copies and scaled data go (default: a temporary "
                                                     "folder, deleted at the end)")
    parser.add_argument("--plots", type=Path, help="folder for a log-log PNG per task")
    args = parser.parse_args(argv)
    mirror = os.environ.get("SEQNLP_DATA_MIRROR")
    if not mirror:
        parser.error("set SEQNLP_DATA_MIRROR to the data mirror (the scaled files are made from its rows)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="seqnlp-scaling-"))
    factors = sorted(set(args.factors))
    print(f"{'stage':<24} {'size':>6} {'wall s':>8} {'peak MB':>8}", flush=True)
    fits = []
    try:
        for task in args.task:
            measurements = {}
            for factor in factors:
                project = project_for(task, factor, args.steps, workdir / task / f"x{factor}", Path(mirror),
                                      args.pairs if task == "questions" else None)
                size = f"{args.pairs:,}" if args.pairs and task == "questions" else f"{factor}x"
                for stage in stages_in_order(project, task):
                    wall, peak = measured(["dvc", "repro", "--single-item", stage], cwd=project)
                    measurements.setdefault(stage, []).append((wall, peak))
                    print(f"{stage:<24} {size:>6} {wall:>8.1f} {peak:>8.0f}", flush=True)
                if task == "questions":
                    for line in similar_queries(project):
                        print(f"  similar at {size}: {line}", flush=True)
                shutil.rmtree(project.parent)  # gigabytes at 16x: one size on disk at a time
            for stage, rows in measurements.items():
                fits.append((stage, growth_exponent(factors, [wall for wall, _ in rows]),
                             growth_exponent(factors, [peak for _, peak in rows])))
            if args.plots and len(factors) > 1:
                args.plots.mkdir(parents=True, exist_ok=True)
                plot(task, factors, measurements, args.plots / f"scaling-{task}.png")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if len(factors) > 1:
        print(f"\n{'stage':<24} {'k time':>7} {'k memory':>9}   (time ∝ n^k, {factors[0]}x to {factors[-1]}x)")
        for stage, time_k, memory_k in fits:
            print(f"{stage:<24} {time_k:>7.2f} {memory_k:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
