"""Tasks: one module each, exposing the same stage functions to the generic drivers in seqnlp.stages.

A task module provides ``download``, ``filter``, ``tokenize`` (each ``(params, input_dir, out_dir)``
writing into ``out_dir`` and returning a stats dict), ``model(params, mode)``, ``loss``,
``eval_metrics``/``metric_names``, ``training_batches(params, tokens_dir, split, seed)``,
``evaluate(params, model, tokens_dir)`` and ``describe_data(raw_dir, filtered_dir)``.
"""

import importlib
import pkgutil

from seqnlp.errors import UserError


def names():
    return sorted(module.name for module in pkgutil.iter_modules(__path__))


def load(name):
    if name not in names():
        raise UserError(f"unknown task {name!r}; known tasks: {', '.join(names())}")
    return importlib.import_module(f"{__name__}.{name}")


def params(name):
    """The task's section of params.yaml, after the whole file passed its checks."""
    from seqnlp import params as params_file

    everything = params_file.load()
    if name not in everything:
        raise UserError(f"{params_file.PARAMS_FILE} has no section for task {name!r}")
    return everything[name]
