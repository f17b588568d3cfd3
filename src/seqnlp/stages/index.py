"""index: encode the questions a retrieval task has seen with its trained model, for `seqnlp similar`."""

import json

from seqnlp import layout, tasks
from seqnlp.artifacts import staged_directory
from seqnlp.stages.evaluate import load_trained


def run(task_name):
    task, params = tasks.load(task_name), tasks.params(task_name)
    model = load_trained(task_name, task, params)
    with staged_directory(layout.index(task_name)) as scratch:
        record = task.build_index(params, model, layout.filtered(task_name), layout.tokens(task_name), scratch)
    print(f"index {task_name} -> {layout.index(task_name)}")
    print(json.dumps(record, indent=2))
