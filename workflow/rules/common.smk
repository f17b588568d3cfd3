import os
from pathlib import Path

import networkx
import yaml
from dvc.dependency.param import ParamsDependency
from dvc.repo import Repo, lock_repo
from seqnlp import resources


def as_output(path, stage):
    """A stage's output as Snakemake declares it: directories flagged, metrics and outputs that dvc.yaml
    labels `report` shown in `snakemake --report`."""
    # dvc.yaml names directories and files alike; by this project's convention only files have a suffix.
    if path in stage["metrics"]:
        return report(path, caption="../report/metrics.rst", category="Metrics")
    if path in stage["reported"]:
        return report(
            directory(path),
            patterns=["{name}.svg"],
            caption="../report/plot.rst",
            category="Plots",
        )
    return directory(path) if not Path(path).suffix else path


def resources_of(table):
    """Each stage's threads, mem_mb, runtime and gpu, as seqnlp.resources reads them from ``table``."""
    return lambda stage: resources.declared(stage.addressing, table=table)


def groups_of(table):
    """Each stage's job group on a cluster (None: a job of its own), by its kind, from ``table``."""
    group_of_kind = {
        kind: group for group, kinds in table["groups"].items() for kind in kinds
    }
    return lambda stage: group_of_kind.get(stage.addressing.split("@")[0])


def _params_read_by(stage):
    """The params.yaml values a stage declares, so that editing one of them reruns the rule."""
    keys = [
        key
        for dep in stage.deps
        if isinstance(dep, ParamsDependency)
        for key in dep.params
    ]
    values = {}
    for key in keys:
        value = config
        for part in key.split("."):
            value = value[part]
        values[key] = value
    return values


def load_dvc_stages(repo, resources_of, group_of):
    """Every stage of dvc.yaml, with DVC's own foreach expansion, upstream stages first."""
    # DVC's graph points from a stage to the stages it depends on.
    upstream_first = reversed(list(networkx.topological_sort(repo.index.graph)))
    return [
        {
            "name": stage.addressing.replace("@", "_"),
            "addressing": stage.addressing,
            "cmd": stage.cmd,
            "input": [
                dep.def_path
                for dep in stage.deps
                if not isinstance(dep, ParamsDependency)
            ],
            "output": [out.def_path for out in stage.outs],
            "metrics": [out.def_path for out in stage.outs if out.metric],
            "reported": [
                out.def_path for out in stage.outs if "report" in out.annot.labels
            ],
            "resources": resources_of(stage),
            "group": group_of(stage),
            "params": _params_read_by(stage),
        }
        for stage in upstream_first
    ]


def with_folder_inputs_expanded(stages):
    """Each input folder that holds other stages' outputs (render_plots reads all of plots/) replaced by
    those outputs: DVC orders stages by such folders, Snakemake only by the exact paths rules make.
    """
    outputs = [output for stage in stages for output in stage["output"]]
    for stage in stages:
        stage["input"] = [
            expanded
            for path in stage["input"]
            for expanded in (
                [output for output in outputs if Path(path) in Path(output).parents]
                or [path]
            )
        ]
    return stages


def _timestamp_path(path):
    """The file whose mtime Snakemake reads for ``path``: a directory output's marker file if it has one."""
    marker = path / ".snakemake_timestamp"
    return marker if path.is_dir() and marker.exists() else path


LONG_AGO = 86400.0  # a day after the epoch: Snakemake reads a zero mtime as none at all


def align_timestamps_with_dvc(repo, stages):
    """Let Snakemake see what DVC sees, so that the two never disagree on what is out of date.

    DVC decides by content hash and restores files (`dvc pull`, `dvc checkout`, a fresh clone) with
    whatever modification times the checkout gives them; Snakemake decides by modification time. So,
    before Snakemake plans, the outputs of each stage that DVC finds up to date are made newer than
    their inputs (upstream first), and those of each stage that DVC finds changed are made older than
    any input, so that Snakemake reruns exactly that stage and what depends on it, even in a fresh clone
    where it has no record of params and code of its own.
    """
    changed = repo.status()
    seen = {}

    def mtime(path):
        if path not in seen:
            seen[path] = (
                _timestamp_path(path).stat().st_mtime if path.exists() else None
            )
        return seen[path]

    for stage in stages:
        outputs = [Path(output) for output in stage["output"] if Path(output).exists()]
        if not outputs:
            continue
        if stage["addressing"] in changed:
            newest = LONG_AGO
        else:
            inputs = [mtime(Path(path)) for path in stage["input"]]
            newest = max((time for time in inputs if time is not None), default=0.0)
            if min(mtime(output) for output in outputs) > newest:
                continue
            newest += 0.001
        for output in outputs:
            os.utime(_timestamp_path(output), (newest, newest))
            seen[output] = newest


RESOURCES = yaml.safe_load((Path(workflow.basedir) / "resources.yaml").read_text())

# Under DVC's repository lock, waiting for it: every job parses this file again, and another job's `dvc repro`
# rewrites dvc.lock in place while holding that lock; read between its writes, dvc.lock can be half written.
with (
    Repo(str(Path(workflow.basedir).parent), _wait_for_lock=True) as dvc_repo,
    lock_repo(dvc_repo),
):
    DVC_STAGES = with_folder_inputs_expanded(
        load_dvc_stages(dvc_repo, resources_of(RESOURCES), groups_of(RESOURCES))
    )
    if workflow.is_main_process:
        align_timestamps_with_dvc(dvc_repo, DVC_STAGES)


def all_outputs():
    return [out for stage in DVC_STAGES for out in stage["output"]]
