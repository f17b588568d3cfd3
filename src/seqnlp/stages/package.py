"""package: write the task's model package (see seqnlp.packages), all at once."""

from seqnlp import layout, packages
from seqnlp.artifacts import staged_directory


def run(task_name):
    with staged_directory(layout.package(task_name)) as scratch:
        info = packages.write(task_name, scratch)
    headline = ", ".join(f"{name} {found['value']:.4g}" for name, found in info["metrics"].items()
                         if isinstance(found["value"], (int, float)))
    print(f"package {task_name} -> {layout.package(task_name)} ({headline})")
