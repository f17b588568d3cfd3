"""A task's trained model: what a finished training run leaves in models/TASK, and the copy of it that the
export stage writes to models/serving/TASK for the commands people type.

The export is the model's forward pass compiled by ``jax.export`` (StableHLO, with symbolic batch and
length dimensions) beside its weights as plain arrays. ``seqnlp classify``, ``tag``, ``duplicates``,
``similar`` and ``generate`` run it with jax and NumPy alone: importing trax imports TensorFlow, seconds
before anything happens, for models that answer in milliseconds.
"""

import dataclasses
import re
from pathlib import Path

import numpy as np

from seqnlp import layout
from seqnlp.artifacts import read_json, save_arrays, write_json
from seqnlp.errors import UserError
from seqnlp.lazy import LazyModule

jax = LazyModule("jax")
jax_export = LazyModule("jax.export")
# jax has no public call to drop source locations from an export; these are the parts jax.export itself uses.
jax_export_internals = LazyModule("jax._src.export._export")
jax_mlir = LazyModule("jax._src.interpreters.mlir")
mlir_ir = LazyModule("jaxlib.mlir.ir")
mlir_passes = LazyModule("jaxlib.mlir.passmanager")

CHECKPOINT_FILE = "model.pkl.gz"
TRAINING_RECORD = "training.json"
EXPORT_FILE, WEIGHTS_FILE, STATE_FILE, EXPORT_RECORD = "model.jaxexport", "weights.npz", "state.npz", "export.json"


def trained_record(task_name, params):
    """The finished run's record; refuse a model whose params differ from params.yaml's."""
    model_dir = layout.model(task_name)
    if not (model_dir / CHECKPOINT_FILE).exists():
        raise UserError(f"no trained model at {model_dir / CHECKPOINT_FILE}; "
                        f"run `seqnlp train {task_name}` (or `dvc repro`) first")
    record_path = model_dir / TRAINING_RECORD
    record = read_json(record_path) if record_path.exists() else None
    if record is None or record["model"] != params["model"]:
        changed = sorted(key for key in params["model"] if (record or {}).get("model", {}).get(key) != params["model"][key])
        raise UserError(f"{model_dir} was trained with other model params than params.yaml's {task_name}.model "
                        f"({', '.join(changed) or 'no record'}); run `dvc repro` (or `seqnlp train {task_name}`) "
                        "to train it again")
    return record


def _example(shape):
    """A concrete shape for a shape string: each named (symbolic) dimension becomes 2."""
    return tuple(int(size) if size.isdigit() else 2 for size in re.split(r"\s*,\s*", shape.strip()))


def without_source_locations(exported):
    """``exported`` with its source locations stripped: jax records the file and line of every traced call,
    so the same model exported from another folder (a clone, a copy) would give other bytes."""
    with jax_mlir.make_ir_context():
        module = mlir_ir.Module.parse(exported.mlir_module())
        mlir_passes.PassManager.parse("builtin.module(strip-debuginfo)").run(module.operation)
        return dataclasses.replace(exported, mlir_module_serialized=jax_export_internals._module_to_bytecode(module))


def export(layer, inputs, constraints, training_record, directory):
    """Write ``layer``'s forward pass, its weights and its state to ``directory``.

    ``inputs`` lists the layer's inputs as (shape, dtype), a shape being a string of dimensions such as
    ``"batch, length, 25"``: named ones are symbolic, so one export serves every batch size and length,
    within ``constraints`` on them such as ``"length >= 2"``. The state is the layer's after one call, so
    a predict-mode layer's state has its recurrent parts.
    """
    directory = Path(directory)
    rng = jax.random.PRNGKey(0)  # an exported layer is in eval or predict mode: nothing in it is random
    examples = [np.zeros(_example(shape), dtype) for shape, dtype in inputs]
    _, probed = layer.pure_fn(examples[0] if len(examples) == 1 else tuple(examples), layer.weights, layer.state,
                              rng)
    weights, weights_tree = jax.tree_util.tree_flatten(layer.weights)
    state, state_tree = jax.tree_util.tree_flatten(probed)

    def forward(weights, state, *arguments):
        outputs, new_state = layer.pure_fn(arguments[0] if len(arguments) == 1 else arguments,
                                           jax.tree_util.tree_unflatten(weights_tree, weights),
                                           jax.tree_util.tree_unflatten(state_tree, state), rng)
        return outputs, jax.tree_util.tree_leaves(new_state)

    scope = jax_export.SymbolicScope(constraints)
    specs = [[jax.ShapeDtypeStruct(array.shape, array.dtype) for array in arrays] for arrays in (weights, state)]
    specs += [jax.ShapeDtypeStruct(jax_export.symbolic_shape(shape, scope=scope), dtype) for shape, dtype in inputs]
    exported = without_source_locations(jax_export.export(jax.jit(forward))(*specs))
    (directory / EXPORT_FILE).write_bytes(exported.serialize())
    for arrays, name in ((weights, WEIGHTS_FILE), (state, STATE_FILE)):
        save_arrays(directory / name, {f"arr_{index}": array for index, array in enumerate(arrays)})
    record = {"inputs": [[shape, np.dtype(dtype).name] for shape, dtype in inputs], "constraints": list(constraints),
              "weights": len(weights), "state": len(state), "training": training_record}
    write_json(directory / EXPORT_RECORD, record)
    return record


def _arrays(path):
    with np.load(path) as stored:
        return [stored[f"arr_{index}"] for index in range(len(stored.files))]


class ExportedModel:
    """An exported layer, run without trax: called like the trax layer it was, with ``weights``, ``state``
    and ``pure_fn(x, weights, state, rng)`` as trax's (an exported layer uses no randomness, so no rng)."""

    def __init__(self, directory):
        directory = Path(directory)
        self._exported = jax_export.deserialize(bytearray((directory / EXPORT_FILE).read_bytes()))
        self.weights, self.state = _arrays(directory / WEIGHTS_FILE), _arrays(directory / STATE_FILE)
        self._forward = jax.jit(self._exported.call)

    def pure_fn(self, x, weights, state, rng=None):
        return self._exported.call(weights, state, *(x if isinstance(x, tuple) else (x,)))

    def __call__(self, x):
        return self._forward(self.weights, self.state, *(x if isinstance(x, tuple) else (x,)))[0]


def load_exported(task_name, params):
    """The task's exported model; refuse one exported from another training run, or from other params."""
    record, directory = trained_record(task_name, params), layout.exported(task_name)
    if not (directory / EXPORT_RECORD).exists():
        raise UserError(f"no exported model at {directory}; run `dvc repro` (or `seqnlp export {task_name}`) first")
    if read_json(directory / EXPORT_RECORD)["training"] != record:
        raise UserError(f"{directory} was exported from another training run than {layout.model(task_name)}'s; "
                        f"run `dvc repro` (or `seqnlp export {task_name}`) to export it again")
    return ExportedModel(directory)
