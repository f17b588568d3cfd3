"""download, filter and tokenize: each turns one directory into the next, all or nothing."""

import json

from seqnlp import layout, tasks
from seqnlp.artifacts import staged_directory, write_json

STAGES = {
    "download": (None, layout.raw, "source.json"),
    "filter": (layout.raw, layout.filtered, "stats.json"),
    "tokenize": (layout.filtered, layout.tokens, "stats.json"),
}


def run(stage, task_name):
    task, params = tasks.load(task_name), tasks.params(task_name)
    source_of, destination_of, record_name = STAGES[stage]
    stage_function = getattr(task, stage)
    with staged_directory(destination_of(task_name)) as out:
        inputs = [source_of(task_name)] if source_of else []
        record = stage_function(params[stage], *inputs, out)
        write_json(out / record_name, record)
    print(f"{stage} {task_name} -> {destination_of(task_name)}")
    print(json.dumps(record, indent=2))
