"""The report a change gets: the workspace's metrics and params against a base revision, each headline
metric beside its anchors (anchors.yaml), and the DVC plots of both revisions as PNG images."""

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from seqnlp import layout
from seqnlp.errors import UserError

ANCHORS = Path("anchors.yaml")


def _table_or(markdown, otherwise):
    """DVC's markdown table, or ``otherwise`` when it has no row (DVC prints a bare header then)."""
    return markdown if len(markdown.strip().splitlines()) > 2 else otherwise


def _dvc(*args):
    result = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"`dvc {' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout


def load_anchors(path=ANCHORS):
    """``{task: {metric: [anchor, ...]}}``; each anchor has a name and a value, at_least or at_most."""
    anchors = yaml.safe_load(path.read_text()) or {}
    for task, metrics in anchors.items():
        for metric, entries in (metrics or {}).items():
            for entry in entries or []:
                kinds = {"value", "at_least", "at_most"} & set(entry)
                if "name" not in entry or len(kinds) != 1:
                    raise UserError(f"{path}: {task}.{metric}: each anchor needs a name and one of value, "
                                    f"at_least, at_most; got {entry}")
    return anchors


def format_value(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    return "–" if value is None else str(value)


def describe_anchor(anchor, value):
    if "value" in anchor:
        return f"{anchor['name']}: {format_value(anchor['value'])}"
    at_least = "at_least" in anchor
    bound = anchor["at_least" if at_least else "at_most"]
    met = value is not None and (value >= bound if at_least else value <= bound)
    return f"{anchor['name']}: {'≥' if at_least else '≤'} {format_value(bound)} {'met' if met else '**not met**'}"


def headline_metrics(task_anchors, metrics):
    """The metrics a task is judged by: those anchors.yaml names for it, else every top-level number of its
    metrics file (a new task has no anchors yet), each with its anchors."""
    if task_anchors:
        return task_anchors
    return {name: [] for name, value in metrics.items() if isinstance(value, float)}


def headline_table(base, metrics, anchors):
    """Markdown rows for one task's headline metrics: base value, workspace value, change and anchors.
    ``metrics`` is that task's part of `dvc metrics diff --json --all`."""
    rows = [f"| metric | {base} | workspace | change | anchors |", "|---|---|---|---|---|"]
    for metric, metric_anchors in anchors.items():
        entry = metrics.get(metric, {})
        old, new = entry.get("old"), entry.get("new")
        change = f"{new - old:+.4f}" if isinstance(old, (int, float)) and isinstance(new, (int, float)) else "–"
        described = "; ".join(describe_anchor(anchor, new) for anchor in metric_anchors or [])
        rows.append(f"| {metric} | {format_value(old)} | {format_value(new)} | {change} | {described} |")
    return "\n".join(rows)


def _slug(title):
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def render_plots(directory, base=None, image_format="png"):
    """Render every plot defined in dvc.yaml's top-level ``plots:`` to ``directory/<title>.<image_format>``
    (png or svg), with the data of the workspace, beside that of ``base`` when one is given; return
    ``[(title, path)]``."""
    import vl_convert

    titles = [next(iter(plot)) for plot in yaml.safe_load(Path("dvc.yaml").read_text()).get("plots", [])]
    rendered = json.loads(_dvc("plots", "diff", base, "--json") if base else _dvc("plots", "show", "--json"))["data"]
    convert = {"png": lambda spec: vl_convert.vegalite_to_png(spec, scale=1),
               "svg": lambda spec: vl_convert.vegalite_to_svg(spec).encode()}[image_format]
    directory.mkdir(parents=True, exist_ok=True)
    images = []
    for title in titles:
        vega = [entry for entry in rendered.get(title, []) if entry.get("type") == "vega"]
        if not vega:
            continue
        image = directory / f"{_slug(title)}.{image_format}"
        image.write_bytes(convert(vega[0]["content"]))
        images.append((title, image))
    return images


def write_report(base, output):
    """Write the markdown report of the workspace against ``base`` to ``output`` and its plots beside it."""
    anchors = load_anchors()
    task_names = list(yaml.safe_load(Path("params.yaml").read_text())["tasks"])
    metrics = json.loads(_dvc("metrics", "diff", base, "--all", "--json"))
    lines = [f"# Metrics report: the workspace against `{base}`", "",
             f"Made by `seqnlp report --base {base}` from the DVC metrics, params and plots of both revisions. "
             "Anchors are the goals and reference figures of `anchors.yaml`.", ""]
    changed = _dvc("metrics", "diff", base, "--md").strip().splitlines()
    header, changed_rows = changed[:2], changed[2:]  # one table for all files; its first column is the path
    for task in task_names:
        file = str(layout.metrics(task))
        task_metrics = metrics.get(file, {})
        shown = headline_metrics(anchors.get(task), {name: entry.get("new") for name, entry in task_metrics.items()
                                                     if "." not in name})
        lines += [f"## {task}", "", headline_table(base, task_metrics, shown), ""]
        rows = [row for row in changed_rows if row.split("|")[1].strip() == file]
        lines += ["<details><summary>every metric that changed (dvc metrics diff)</summary>", "",
                  "\n".join(header + rows) if rows else "No metric changed.", "", "</details>", ""]
    params = _dvc("params", "diff", base, "--md").strip()
    lines += ["## Params that changed", "", _table_or(params, "No param changed."), "", "## Plots", ""]
    images = render_plots(output.parent / f"{output.stem}-plots", base)
    for title, image in images:
        lines += [f"### {title}", "", f"![{title}]({image.relative_to(output.parent).as_posix()})", ""]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines))
    return images
