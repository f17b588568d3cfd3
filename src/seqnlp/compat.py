"""Import trax quietly and quickly, and mend what trax 1.4.1 gets wrong on current jax.

Every module of seqnlp that needs trax imports it from here, so the fixes below are applied once,
before any training loop exists:

* ``tree_unflatten`` tests ``tree in copy_from_tree``; when ``tree`` is a jax array and
  ``copy_from_tree`` is ``[()]`` this compares an array with a tuple and raises
  ``TypeError: unsupported operand type(s) for ==: 'ArrayImpl' and 'tuple'``. A ``training.Loop``
  hits it when it restores optimizer slots from a checkpoint, so resuming crashed.
* ``jax.host_count`` is deprecated in jax (it warns on every call) and is to be removed; trax still
  calls it, so it is pointed at ``jax.process_count``, the same count under its current name.
* ``trax.layers.assert_shape`` calls ``inspect.stack()`` for every decorated layer at import time; with
  TensorFlow's ~10k modules loaded each call scans ``sys.modules`` for every frame, so ``import trax``
  took a minute. During the import ``inspect.stack`` is swapped for a walk that only collects frames.
* TensorFlow's C++ start-up lines and gym's NumPy-2 notice are kept off the user's terminal.

And three things trax does not offer, which exact resume needs (see seqnlp.checkpoints):

* ``trax.data.Shuffle`` draws from NumPy's global generator, shared by the training and the validation
  streams and by everything else; :func:`Shuffle` is the same queue shuffle with a generator of its own,
  so a stream can be rebuilt and fast-forwarded to where an interrupted run left it.
* ``Loop.save_checkpoint`` writes only into the loop's output directory, file by file, in place;
  :func:`save_checkpoint_to` points it at another directory so a checkpoint can be written as one unit.
* The loop's random key is not in its checkpoint; :func:`loop_rng` and :func:`set_loop_rng` read and
  restore it.
"""

import contextlib
import inspect
import os
import sys
import warnings

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message="GzipFile was opened for writing", category=FutureWarning)


@contextlib.contextmanager
def _stderr_silenced():
    """Point file descriptor 2 at /dev/null: TF's C++ logger writes there before Python sees it."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _frames_only_stack(context=1):
    frames, frame = [], sys._getframe(1)
    while frame is not None:
        frames.append((frame,))
        frame = frame.f_back
    return frames


@contextlib.contextmanager
def _cheap_inspect_stack():
    original = inspect.stack
    inspect.stack = _frames_only_stack
    try:
        yield
    finally:
        inspect.stack = original


def _is_copied_leaf(tree, copy_from_tree):
    return any(type(tree) is type(leaf) and tree == leaf for leaf in copy_from_tree)


def tree_unflatten(flat, tree, copy_from_tree=None):
    """trax's ``fastmath.tree_unflatten`` with a membership test that never compares arrays."""
    if copy_from_tree is not None and _is_copied_leaf(tree, copy_from_tree):
        return tree, flat
    if isinstance(tree, (list, tuple)):
        new_tree, rest = [], flat
        for subtree in tree:
            new_subtree, rest = tree_unflatten(rest, subtree, copy_from_tree=copy_from_tree)
            new_tree.append(new_subtree)
        return (tuple(new_tree) if isinstance(tree, tuple) else new_tree), rest
    if isinstance(tree, dict):
        new_tree, rest = {}, flat
        for key in tree:
            new_tree[key], rest = tree_unflatten(rest, tree[key], copy_from_tree=copy_from_tree)
        return new_tree, rest
    return flat[0], flat[1:]


def _import_trax():
    import gym_notices.notices

    gym_notices.notices.notices.clear()
    with _stderr_silenced(), _cheap_inspect_stack():
        import jax
        import trax
        import trax.fastmath.numpy
        import trax.supervised  # noqa: F401  (registers trax.supervised.training)

    jax.host_count = jax.process_count
    trax.fastmath.numpy.tree_unflatten = tree_unflatten
    trax.fastmath.tree_unflatten = tree_unflatten
    return trax


trax = _import_trax()


def Shuffle(queue_size=1024, seed=0):  # noqa: N802  (named like the trax.data combinator it replaces)
    """``trax.data.Shuffle`` with its own seeded generator instead of NumPy's global one.

    The generator is spawned from ``seed`` rather than seeded with it: a generator seeded with the same
    number upstream (the tasks shuffle each epoch with ``default_rng(seed)``) would draw the same random
    stream, and the queue's draws would partly undo that shuffle, bringing neighbouring lines together.
    """

    def shuffle(samples):
        generator = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
        samples = iter(samples)
        queue = [sample for _, sample in zip(range(queue_size), samples)]
        for sample in samples:
            index = generator.integers(len(queue))
            yield queue[index]
            queue[index] = sample
        for index in generator.permutation(len(queue)):
            yield queue[index]

    return shuffle


def save_checkpoint_to(loop, directory, basename="model"):
    """Write the loop's checkpoint files into ``directory`` instead of its output directory."""
    output_dir, loop._output_dir = loop._output_dir, str(directory)
    try:
        loop.save_checkpoint(basename)
    finally:
        loop._output_dir = output_dir


def without_summary_files(loop):
    """Keep the Loop from writing TensorBoard event files and config.gin into its output directory.

    seqnlp's curves come from the loop's history (DVCLive); the event files were never read, grew the
    checkpoint store, and a full disk surfaced as a RuntimeError from TensorFlow's writer thread in the
    middle of a step. The Loop has already restored its checkpoint from the directory when it was built;
    checkpoints are written by :func:`save_checkpoint_to`."""
    loop._output_dir = None
    return loop


def loop_rng(loop):
    """The loop's random key, as a NumPy array."""
    return np.asarray(loop._rng)


def set_loop_rng(loop, key):
    loop._rng = trax.fastmath.numpy.asarray(np.asarray(key, dtype=np.uint32))
