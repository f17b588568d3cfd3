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

import contextlib
import shutil
import subprocess
from pathlib import Path

import yaml

from seqnlp import layout, predictors, tasks, trained
from seqnlp.artifacts import read_json, sha256_of, write_json
from seqnlp.errors import UserError
from seqnlp.stages.evaluate import training_summary

FORMAT, FORMAT_VERSION = "seqnlp-model-package", 1
INFO, MANIFEST, CARD, MODEL = "package.json", "manifest.json", "README.md", "model"
ANCHORS = Path("anchors.yaml")
EXPORT_FILES = (trained.EXPORT_FILE, trained.WEIGHTS_FILE, trained.STATE_FILE, trained.EXPORT_RECORD)


CODE_AND_PARAMS = ("src", "params.yaml", "dvc.yaml")  # what makes a model; the run itself changes dvc.lock and metrics


def _git_commit():
    """HEAD's commit and whether the code or params differ from it (None outside git)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_AND_PARAMS],
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "uncommitted_code_or_params": bool(changed)}


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
    predictor = predictors.PREDICTORS.get(module)
    if predictor is None:
        raise UserError(f"task module {module} has no predictor class in src/seqnlp/predictors.py, so {task_name} "
                        f"has no model package; add one (docs/adding-a-task.md), or stop at `dvc repro "
                        f"export@{task_name}`")
    record = trained.trained_record(task_name, params)
    exported = layout.exported(task_name)
    if read_json(exported / trained.EXPORT_RECORD)["training"] != record:
        raise UserError(f"{exported} was exported from another training run than {layout.model(task_name)}'s; "
                        f"run `dvc repro` (or `seqnlp export {task_name}`) first")
    metrics_file = layout.metrics(task_name)
    if not metrics_file.exists():
        raise UserError(f"no metrics at {metrics_file}; run `dvc repro` (or `seqnlp evaluate {task_name}`) first")
    metrics = read_json(metrics_file)
    if metrics.get("training") != training_summary(record):
        raise UserError(f"{metrics_file} was not made from {layout.model(task_name)}'s training run; "
                        f"run `dvc repro` (or `seqnlp evaluate {task_name}`) first")
    (out / MODEL).mkdir()
    for name in EXPORT_FILES:  # the export's own files, not what tools leave beside them (.snakemake_timestamp)
        shutil.copyfile(exported / name, out / MODEL / name)
    (out / predictors.ASSETS).mkdir()
    predictor.write_assets(task_name, params, out / predictors.ASSETS)
    info = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "task": task_name, "module": module,
        "predictor": predictor.__name__, "answers": predictor.answers(out / predictors.ASSETS), "params": params,
        "metrics": _headline(task_name, metrics),
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
    subset = data.get("train_is_subset", data.get("is_subset"))
    lines += [
        "", "## Training data", "",
        f"Source: {data.get('source', 'unknown')}; " + ", ".join(
            f"{key.replace('_', ' ')}: {value}" for key, value in sorted(data.items())
            if key.endswith("_rows") or key.endswith("_sentences") or key.endswith("_pairs") or key.endswith("_lines")),
        "",
        ("**Trained on a subset** of the full training data (the offline mirror's), so the figures above are not "
         "full-data results." if subset else "Trained on the full training split of its source." if subset is False
         else "Trained on the whole corpus of its source (no subset was drawn)."),
        "", "## Input and limits", "", predictor.limits(info["params"]), "",
        *(f"- {key.replace('_', ' ')}: " + (", ".join(map(str, value)) if isinstance(value, list) else f"`{value}`")
          for key, value in info["answers"].items()), "",
        "## Provenance", "",
        f"- training: {training['steps']} steps" + (
            f", resumed from step(s) {training['resumed_from_steps']}" if training["resumed_from_steps"] else
            ", uninterrupted"),
        f"- git commit: {git.get('commit', 'unknown')}" + (
            " (with uncommitted changes to the code or params)" if git.get("uncommitted_code_or_params") else ""),
        *(f"- DVC md5 of `{path}`: {md5}" for path, md5 in sorted(info["provenance"]["dvc_md5"].items())),
        f"- package format: {info['format']} version {info['format_version']}",
        "", "## Use", "", "```python", "import seqnlp", "", "model = seqnlp.load(\"PATH/TO/THIS/FOLDER\")",
        predictor.usage, "```", "",
        "`seqnlp --help` lists the commands; each takes `--package PATH/TO/THIS/FOLDER`.", "",
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
        # Files the manifest does not list are never read (Snakemake marks a folder it made with one).
        missing = sorted(name for name in manifest if not (self.directory / name).is_file())
        if missing:
            raise UserError(f"{self.directory} does not match its manifest: missing {', '.join(missing)}")
        for name, expected in sorted(manifest.items()):
            if sha256_of(self.directory / name) != expected:
                raise UserError(f"{self.directory / name} does not match its sha256 in {MANIFEST}: "
                                "the package is corrupt or was changed")

    def model(self, directory=None):
        """The exported model in ``directory`` (default: the package's ``model/``), run with jax alone."""
        directory = directory or self.directory / MODEL
        try:
            return trained.ExportedModel(directory)
        except ValueError as error:  # np.load refuses pickled objects: a package holds plain arrays only
            raise UserError(f"{directory}: {error}") from None


def _checkout_package(task_name):
    """The checkout's package of ``task_name``, refused when it was not made from the checkout's trained
    model and params (a pipeline that has not rerun since they changed)."""
    from seqnlp import params as params_file

    root = params_file.repository_root()
    with contextlib.chdir(root):  # the pipeline's paths, the params schema's among them, are the root's
        everything = params_file.load()
        if task_name not in everything["tasks"]:
            raise UserError(f"{task_name!r} is neither a model package folder nor a task of "
                            f"{root / params_file.PARAMS_FILE} ({', '.join(everything['tasks'])})")
        directory = root / layout.package(task_name)
        if not (directory / INFO).exists():
            raise UserError(f"no model package at {directory}; run `dvc repro` (or `seqnlp package {task_name}`) "
                            "first")
        package = Package(directory)
        # the trained model's record, refused (naming the params) when params.yaml's model params differ
        record = trained.trained_record(task_name, everything[task_name])
    if package.info["training"] != record:
        raise UserError(f"{directory} was made from another training run than {layout.model(task_name)}'s; run "
                        f"`dvc repro` (or `seqnlp package {task_name}`) to make it again")
    return package


def load(source):
    """The predictor of a model package: ``source`` is a package folder, or a task name inside a checkout
    (its ``packages/TASK``, made by the pipeline's package stage)."""
    if isinstance(source, Path) or (isinstance(source, str) and (Path(source) / INFO).exists()):
        package = Package(source)
    elif isinstance(source, str) and source and "/" not in source:
        package = _checkout_package(source)
    else:
        raise UserError(f"expected a model package folder or a task name, got {source!r}"[:200])
    predictor = predictors.PREDICTORS.get(package.info.get("module"))
    if predictor is None or predictor.__name__ != package.info.get("predictor"):
        raise UserError(f"{package.directory / INFO}: unknown task module {package.info.get('module')!r}")
    return predictor(package)
