"""evaluate: score the trained checkpoint on the task's held-out split; write metrics and plot data."""

import json

from seqnlp import layout, tasks
from seqnlp.artifacts import staged_directory, staged_file, write_json
from seqnlp.trained import CHECKPOINT_FILE, trained_record


def load_trained(task_name, task, params, mode="eval"):
    """The task's model in ``mode`` with the weights of the finished training run."""
    trained_record(task_name, params)
    model = task.model(params, mode=mode)
    model.init_from_file(str(layout.model(task_name) / CHECKPOINT_FILE), weights_only=True)
    return model


def training_summary(record):
    """How the evaluated model was trained, so a resumed run is never mistaken for an uninterrupted one."""
    return {"steps": record["steps"], "resumed": bool(record["resumed_from_steps"]),
            "resumed_from_steps": record["resumed_from_steps"]}


def run(task_name):
    task, params = tasks.load(task_name), tasks.params(task_name)
    model = load_trained(task_name, task, params)
    results, plots = task.evaluate(params, model, layout.tokens(task_name))
    results["data"] = task.describe_data(layout.raw(task_name), layout.filtered(task_name))
    results["training"] = training_summary(trained_record(task_name, params))
    # Metrics and plot data are one unit: both are written in full before either replaces the last run's.
    with staged_directory(layout.plots(task_name) / "eval") as plots_scratch, \
            staged_file(layout.metrics(task_name)) as metrics_scratch:
        for name, rows in plots.items():
            (plots_scratch / name).write_text(json.dumps(rows) + "\n")
        write_json(metrics_scratch, results)
    print(f"evaluate {task_name} -> {layout.metrics(task_name)}")
    print(json.dumps(results, indent=2))
