"""Model packages: a trained model in one self-contained folder that works outside the repository.

The package stage writes ``packages/TASK``:

* ``model/``: the export stage's forward pass and weights (seqnlp.trained), run with jax and NumPy alone;
* ``assets/``: what the task's predictor reads besides the model (vocabulary, alphabet, question index);
* ``package.json``: the format version, the task, its params, its labels, its headline metrics of this
  commit beside their anchors, the data it was trained on (and whether that was a subset) and where it
  came from: the git commit, the DVC hashes of its training data and model, the training run's record;
* ``README.md``: the model card, generated from package.json;
* ``manifest.json``: the sha256 of every other file, checked at every load.

A package is data, not code: loading reads JSON, NumPy arrays (never pickled objects) and a serialized
StableHLO program, and imports nothing from the package. ``seqnlp.load`` is the way in.
"""

import shutil
import subprocess
from pathlib import Path

import yaml

from seqnlp import layout, predictors, tasks, trained
from seqnlp.artifacts import read_json, sha256_of, write_json
from seqnlp.errors import UserError

FORMAT, FORMAT_VERSION = "seqnlp-model-package", 1
INFO, MANIFEST, CARD, MODEL = "package.json", "manifest.json", "README.md", "model"
ANCHORS = Path("anchors.yaml")


def _git_commit():
    """HEAD's commit and whether the work tree's tracked files differ from it (None outside git)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                 text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "uncommitted_changes": bool(changed)}


def _dvc_hashes(task_name):
    """The md5 that dvc.lock records for the task's training data and trained model."""
    lock = yaml.safe_load(Path("dvc.lock").read_text()) if Path("dvc.lock").exists() else {}
    wanted = {str(layout.tokens(task_name)), str(layout.model(task_name))}
    return {out["path"]: out["md5"] for stage in (lock or {}).get("stages", {}).values()
            for out in stage.get("outs", []) if out["path"] in wanted}


def _headline(task_name, metrics):
    """Each metric anchors.yaml names for the task, with its value and its anchors (goals, course, peers)."""
    anchors = (yaml.safe_load(ANCHORS.read_text()) or {}).get(task_name, {}) if ANCHORS.exists() else {}
    headline = {}
    for dotted, metric_anchors in anchors.items():
        value = metrics
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        headline[dotted] = {"value": value, "anchors": metric_anchors or []}
    return headline


def write(task_name, out):
    """Write the package of ``task_name`` (from this checkout's pipeline outputs) into the empty folder ``out``."""
    params, module = tasks.params(task_name), tasks.module_name(task_name)
    record = trained.trained_record(task_name, params)
    exported = layout.exported(task_name)
    if read_json(exported / trained.EXPORT_RECORD)["training"] != record:
        raise UserError(f"{exported} was exported from another training run than {layout.model(task_name)}'s; "
                        f"run `dvc repro` (or `seqnlp export {task_name}`) first")
    metrics_file = layout.metrics(task_name)
    if not metrics_file.exists():
        raise UserError(f"no metrics at {metrics_file}; run `dvc repro` (or `seqnlp evaluate {task_name}`) first")
    metrics = read_json(metrics_file)
    if metrics.get("training") != {"steps": record["steps"], "resumed": bool(record["resumed_from_steps"]),
                                   "resumed_from_steps": record["resumed_from_steps"]}:
        raise UserError(f"{metrics_file} was not made from {layout.model(task_name)}'s training run; "
                        f"run `dvc repro` (or `seqnlp evaluate {task_name}`) first")
    predictor = predictors.PREDICTORS[module]
    shutil.copytree(exported, out / MODEL)
    (out / predictors.ASSETS).mkdir()
    predictor.write_assets(task_name, params, out / predictors.ASSETS)
    info = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "task": task_name, "module": module,
        "predictor": predictor.__name__, "params": params, "metrics": _headline(task_name, metrics),
        "data": metrics.get("data", {}), "training": record,
        "provenance": {"git": _git_commit(), "dvc_md5": _dvc_hashes(task_name)},
    }
    write_json(out / INFO, info)
    (out / CARD).write_text(model_card(info))
    files = sorted(path for path in out.rglob("*") if path.is_file())
    write_json(out / MANIFEST, {path.relative_to(out).as_posix(): sha256_of(path) for path in files})
    return info


def _figure(value):
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def model_card(info):
    """The package's README.md, from its package.json alone."""
    task, data, training = info["task"], info["data"], info["training"]
    git = info["provenance"]["git"] or {}
    predictor = getattr(predictors, info["predictor"])
    lines = [
        f"# seqnlp model package: `{task}`", "",
        (predictor.__doc__ or "").strip().splitlines()[0], "",
        "Generated by `seqnlp package` from the pipeline's outputs; do not edit.", "",
        "## Held-out results", "", "| metric | this model | anchors (goals, course, peers) |", "|---|---|---|",
    ]
    for metric, found in info["metrics"].items():
        anchors = "; ".join(f"{anchor['name']}: " + (
            f"≥ {anchor['at_least']}" if "at_least" in anchor else
            f"≤ {anchor['at_most']}" if "at_most" in anchor else _figure(anchor.get("value")))
            for anchor in found["anchors"]) or "–"
        lines.append(f"| {metric} | {_figure(found['value'])} | {anchors} |")
    subset = data.get("train_is_subset")
    lines += [
        "", "## Training data", "",
        f"Source: {data.get('source', 'unknown')}; " + ", ".join(
            f"{key.replace('_', ' ')}: {value}" for key, value in sorted(data.items())
            if key.endswith("_rows") or key.endswith("_sentences") or key.endswith("_pairs") or key.endswith("_lines")),
        "",
        ("**Trained on a subset** of the full training data (the offline mirror's), so the figures above are not "
         "full-data results." if subset else "Trained on the full training split of its source." if subset is False
         else "Subset status: not recorded."),
        "", "## Input and limits", "", predictor.limits(info["params"]), "",
        "## Provenance", "",
        f"- training: {training['steps']} steps" + (
            f", resumed from step(s) {training['resumed_from_steps']}" if training["resumed_from_steps"] else
            ", uninterrupted"),
        f"- git commit: {git.get('commit', 'unknown')}" + (" (with uncommitted changes)" if git.get("uncommitted_changes")
                                                             else ""),
        *(f"- DVC md5 of `{path}`: {md5}" for path, md5 in sorted(info["provenance"]["dvc_md5"].items())),
        f"- package format: {info['format']} version {info['format_version']}",
        "", "## Use", "", "```python", "import seqnlp", "", "model = seqnlp.load(\"PATH/TO/THIS/FOLDER\")",
        predictor.usage, "```", "",
        f"`seqnlp --help` lists the commands; each takes `--package PATH/TO/THIS/FOLDER`.", "",
    ]
    return "\n".join(lines)


class Package:
    """A package folder, checked against its manifest and format version."""

    def __init__(self, directory):
        self.directory = Path(directory)
        info_file = self.directory / INFO
        if not info_file.is_file():
            raise UserError(f"{self.directory} is not a seqnlp model package (no {INFO})")
        try:
            self.info = read_json(info_file)
        except ValueError as error:
            raise UserError(f"{info_file}: not valid JSON ({error})") from None
        if self.info.get("format") != FORMAT or not isinstance(self.info.get("format_version"), int):
            raise UserError(f"{info_file}: not a {FORMAT} (format {self.info.get('format')!r})")
        if self.info["format_version"] > FORMAT_VERSION:
            raise UserError(f"{self.directory} is a version {self.info['format_version']} package; this seqnlp reads "
                            f"version {FORMAT_VERSION} and older: upgrade seqnlp")
        self._verify()
        self.task, self.params = self.info["task"], self.info["params"]
        self.assets = self.directory / predictors.ASSETS

    def _verify(self):
        try:
            manifest = read_json(self.directory / MANIFEST)
        except (OSError, ValueError) as error:
            raise UserError(f"{self.directory / MANIFEST}: cannot be read ({error})") from None
        present = {path.relative_to(self.directory).as_posix() for path in self.directory.rglob("*")
                   if path.is_file()} - {MANIFEST}
        if present != set(manifest):
            extra, missing = sorted(present - set(manifest)), sorted(set(manifest) - present)
            raise UserError(f"{self.directory} does not match its manifest: "
                            + "; ".join(filter(None, [missing and f"missing {', '.join(missing)}",
                                                      extra and f"unexpected {', '.join(extra)}"])))
        for name, expected in sorted(manifest.items()):
            if sha256_of(self.directory / name) != expected:
                raise UserError(f"{self.directory / name} does not match its sha256 in {MANIFEST}: "
                                "the package is corrupt or was changed")

    def model(self):
        try:
            return trained.ExportedModel(self.directory / MODEL)
        except ValueError as error:  # np.load refuses pickled objects: a package holds plain arrays only
            raise UserError(f"{self.directory / MODEL}: {error}") from None


def load(source):
    """The predictor of a model package: ``source`` is a package folder, or a task name inside a checkout
    (its ``packages/TASK``, made by the pipeline's package stage)."""
    if not isinstance(source, (str, Path)):
        raise UserError(f"expected a package folder or a task name, got {type(source).__name__}")
    directory = Path(source)
    if not (directory / INFO).exists() and isinstance(source, str) and "/" not in source:
        from seqnlp.params import repository_root

        root = repository_root()
        listed = (yaml.safe_load((root / "params.yaml").read_text()) or {}).get("tasks", {})
        if source not in listed:
            raise UserError(f"{source!r} is neither a model package folder nor a task of {root / 'params.yaml'} "
                            f"({', '.join(listed)})")
        directory = root / layout.package(source)
        if not (directory / INFO).exists():
            raise UserError(f"no package at {directory}; run `dvc repro` (or `seqnlp package {source}`) first")
    package = Package(directory)
    predictor = predictors.PREDICTORS.get(package.info.get("module"))
    if predictor is None or predictor.__name__ != package.info.get("predictor"):
        raise UserError(f"{directory / INFO}: unknown task module {package.info.get('module')!r}")
    return predictor(package)
