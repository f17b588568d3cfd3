"""The README's results table: each task's headline metrics (those anchors.yaml names), as this checkout's
metrics/<task>.json holds them, beside their goals and the course's and peers' figures."""

import json
from pathlib import Path

import yaml

from seqnlp import layout
from seqnlp.regenerate import flatten
from seqnlp.errors import UserError
from seqnlp.report import describe_anchor, format_value, headline_metrics, load_anchors

README = Path("README.md")
RESULTS_START = "<!-- results: made by `seqnlp results` from metrics/*.json and anchors.yaml; edit those, not this -->"
RESULTS_END = "<!-- end of results -->"


def _data_summary(data):
    """Where the data came from and how much of it trained the model: the evaluate stage's ``data`` block."""
    source = f"{data.get('source', '?')}{'' if data.get('pinned_source') else ' (not pinned)'}"
    sizes = [(key[len("train_"):], value) for key, value in data.items()
             if key.startswith("train_") and isinstance(value, int) and not isinstance(value, bool)]
    subset = any(value is True for key, value in data.items() if key.endswith("is_subset"))
    return ", ".join([source, *(f"{value:,} training {unit}" for unit, value in sizes[:1]),
                      *(["**a subset**"] if subset else [])])


def table(task_names, anchors, metrics_of):
    """Markdown: each task's headline metrics (those anchors.yaml names) with its goals and the course's and
    peers' figures. ``metrics_of(task)`` gives the task's metrics/<task>.json."""
    rows = ["| task | data | metric | this commit | goal | course and peers |", "|---|---|---|---|---|---|"]
    for task in task_names:
        metrics = metrics_of(task)
        flat = flatten(metrics)  # anchors name metrics by dotted path, as regenerate compares them
        first = True
        for metric, entries in headline_metrics(anchors.get(task), metrics).items():
            value = flat.get(metric)
            goals = "; ".join(describe_anchor(anchor, value) for anchor in entries or [] if "value" not in anchor)
            figures = "; ".join(describe_anchor(anchor, value) for anchor in entries or [] if "value" in anchor)
            where = f"`{task}` | {_data_summary(metrics.get('data', {}))}" if first else " | "
            rows.append(f"| {where} | {metric} | **{format_value(value)}** | {goals or '–'} | {figures or '–'} |")
            first = False
    return "\n".join(rows)


def update(readme=README, check=False):
    """Rewrite the results block of ``readme`` from this checkout's metrics and anchors; with ``check``,
    write nothing and return whether the block is already what the code makes (True: up to date)."""
    text = readme.read_text()
    start, end = text.find(RESULTS_START), text.find(RESULTS_END)
    if start < 0 or end < start:
        raise UserError(f"{readme}: no results block (a line `{RESULTS_START}`, the table, then `{RESULTS_END}`)")
    task_names = list(yaml.safe_load(Path("params.yaml").read_text())["tasks"])
    made = table(task_names, load_anchors(), lambda task: json.loads(layout.metrics(task).read_text()))
    updated = f"{text[:start]}{RESULTS_START}\n\n{made}\n\n{text[end:]}"
    if not check and updated != text:
        readme.write_text(updated)
    return updated == text
