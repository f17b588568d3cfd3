"""Tasks: one module each, providing the functions of seqnlp.contract.Task to the generic drivers in
seqnlp.stages, and perhaps the optional ones of seqnlp.contract (the generate and index stages).

params.yaml's ``tasks:`` maps each task name (its params section, its data/, models/ and metrics) to
the module that runs it, so one module can serve several tasks (the NER corpora).
"""

import importlib
import pkgutil

from seqnlp.errors import UserError


def modules():
    """The task modules under src/seqnlp/tasks."""
    return sorted(module.name for module in pkgutil.iter_modules(__path__))


def module_name(name):
    """The module that runs task ``name``, from params.yaml's ``tasks:``."""
    from seqnlp import params as params_file

    listed = params_file.load()["tasks"]
    if name not in listed:
        raise UserError(f"unknown task {name!r}; params.yaml's tasks: are {', '.join(listed)}")
    return listed[name]


def load(name):
    return importlib.import_module(f"{__name__}.{module_name(name)}")


def cross_entropy_metrics():
    """The metrics of a model that ends in LogSoftmax: weighted cross-entropy and accuracy."""
    from seqnlp.compat import trax

    return {"CrossEntropy": trax.layers.WeightedCategoryCrossEntropy(),
            "Accuracy": trax.layers.WeightedCategoryAccuracy()}


def params(name):
    """The task's section of params.yaml, after the whole file passed its checks."""
    from seqnlp import params as params_file

    everything = params_file.load()
    if name not in everything:
        raise UserError(f"{params_file.PARAMS_FILE} has no section for task {name!r}")
    return everything[name]
