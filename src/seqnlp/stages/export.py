"""export: write the trained model's forward pass and weights for the commands people type (see seqnlp.trained)."""

import json

from seqnlp import layout, tasks, trained
from seqnlp.artifacts import staged_directory
from seqnlp.stages.evaluate import load_trained


def run(task_name):
    task, params = tasks.load(task_name), tasks.params(task_name)
    layer, inputs, constraints = task.served_model(params, load_trained(task_name, task, params))
    with staged_directory(layout.exported(task_name)) as scratch:
        record = trained.export(layer, inputs, constraints, trained.trained_record(task_name, params), scratch)
    print(f"export {task_name} -> {layout.exported(task_name)}")
    print(json.dumps({key: record[key] for key in ("inputs", "constraints", "weights", "state")}))
