"""Tasks: one module each, exposing the same stage functions to the generic drivers in seqnlp.stages.

A task module provides ``download``, ``filter``, ``tokenize`` (each ``(params, input_dir, out_dir)``
writing into ``out_dir`` and returning a stats dict), ``model(params, mode)``, ``loss(params)``,
``eval_metrics(params)`` (name -> metric layer), ``training_batches(params, tokens_dir, split, seed)``,
``evaluate(params, model, tokens_dir)``, ``describe_data(raw_dir, filtered_dir)`` and
``served_model(params, model)``: the layer the export stage writes for the task's command, its inputs
and the constraints on their sizes (see seqnlp.trained.export).

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
