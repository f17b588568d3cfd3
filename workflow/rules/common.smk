from pathlib import Path

from dvc.dependency.param import ParamsDependency
from dvc.repo import Repo


def _as_output(path):
    # dvc.yaml names directories and files alike; by this project's convention only files have a suffix.
    return directory(path) if not Path(path).suffix else path


def _params_read_by(stage):
    """The params.yaml values a stage declares, so that editing one of them reruns the rule."""
    keys = [key for dep in stage.deps if isinstance(dep, ParamsDependency) for key in dep.params]
    values = {}
    for key in keys:
        value = config
        for part in key.split("."):
            value = value[part]
        values[key] = value
    return values


def load_dvc_stages():
    """Every stage of dvc.yaml, with DVC's own foreach expansion: name, cmd, inputs, outputs, params."""
    with Repo(workflow.basedir + "/..") as repo:
        return [
            {
                "name": stage.addressing.replace("@", "_"),
                "cmd": stage.cmd,
                "input": [dep.def_path for dep in stage.deps if not isinstance(dep, ParamsDependency)],
                "output": [_as_output(out.def_path) for out in stage.outs],
                "params": _params_read_by(stage),
            }
            for stage in repo.index.stages
        ]


DVC_STAGES = load_dvc_stages()


def all_outputs():
    return [out for stage in DVC_STAGES for out in stage["output"]]
