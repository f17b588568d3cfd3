"""Layers that Trax lacks, shared by the tasks, each tested against a plain NumPy reference.

Linear-chain CRF for sequence tagging
-------------------------------------

A tagger ends in ``tl.Dense(n_tags)`` (per-token emission scores) followed by :class:`CRF`::

    model = tl.Serial(..., tl.Dense(n_tags), CRF(n_tags))
    task = training.TrainTask(batches, CRFLoss(), optimizer)   # batches: (inputs, tags, mask)
    tags = viterbi_decode(model(inputs), mask)                  # or the CRFDecode() layer

The score of a tag path ``y`` over a sentence of length ``T`` is::

    start[y0] + sum_t emissions[t, y_t] + sum_{t>=1} transitions[y_{t-1}, y_t] + end[y_{T-1}]

and the CRF trains by maximising the log-probability of the gold path among all paths.

Why one packed output: a trax training ``Loop`` feeds a loss layer ``(model_output, targets,
weights)``, so the learned transition/start/end scores have to travel inside the model's single
output. :class:`CRF` emits ``potentials`` of shape ``(batch, length, n_tags + 1, n_tags)``:

* ``potentials[b, t, i, j]`` for ``i < n_tags``: the score of tag ``j`` at position ``t`` after tag
  ``i`` at ``t - 1``, i.e. ``transitions[i, j] + emissions[b, t, j]``. Position 0 has no
  predecessor: every row ``i`` there holds ``start[j] + emissions[b, 0, j]``.
* ``potentials[b, t, n_tags, j]``: ``end[j]``, the score of ending on tag ``j`` (the same at every
  ``t``; only ``t = 0`` is read, because where a row ends depends on the mask, which the CRF never
  sees).

That is ``n_tags + 1`` times the size of the emissions (batch 64 x length 100 x 17 tags: 7.8 MB
in float32), a small price for keeping the model a plain ``tl.Serial``.

Masks: ``weights``/``mask`` is (batch, length), > 0 on real tokens and 0 on padding, and padding
comes only at the END of a row (a hole in the middle would be skipped by the forward pass but not
by the gold score). Weight values other than 0 are not used as per-token weights, only as "real".

Constraints: ``CRF(n_tags, allowed=(start_allowed, transition_allowed))`` pins forbidden starts
and transitions to ``NEG`` (-1e4) inside the potentials, so the likelihood gives forbidden paths
no mass and Viterbi never picks one. -1e4 rather than -inf: -inf turns ``logsumexp`` of an
all-forbidden column and ``0 * score`` into NaN, and -1e4 is already exp(-1e4) = 0 in float32.
The gold paths must then obey the constraints too (IOB2 data, not IOB1); a forbidden gold path
costs about 1e4 in loss.
"""

import jax
import numpy as np

from seqnlp.compat import trax  # noqa: F401  (applies the trax fixes before trax is used)
from trax import fastmath
from trax.fastmath import numpy as jnp
from trax.layers import base
from trax.layers import initializers as init

NEG = -1e4


def crf_potentials(emissions, transitions, start, end):
    """Packs emissions (batch, length, n) and the CRF scores into (batch, length, n + 1, n)."""
    batch, _, n = emissions.shape
    first = jnp.broadcast_to((start + emissions[:, 0])[:, None, None, :], (batch, 1, n, n))
    later = transitions + emissions[:, 1:, None, :]
    edges = jnp.concatenate([first, later], axis=1)
    ends = jnp.broadcast_to(end, edges.shape[:2] + (1, n))
    return jnp.concatenate([edges, ends], axis=2)


def _unpack(potentials, mask):
    edges, end = potentials[:, :, :-1], potentials[:, 0, -1]
    real = mask > 0
    # scan runs over time, so time goes first; position 0 only seeds the recursion.
    later = (jnp.swapaxes(edges[:, 1:], 0, 1), jnp.swapaxes(real[:, 1:], 0, 1))
    return edges, end, real, later


def crf_nll(potentials, targets, mask):
    """Negative log-likelihood of each row's gold tag path, (batch,); 0 for rows with no tokens."""
    edges, end, real, later = _unpack(potentials, mask)
    # Padding may hold any id (a PAD tag, -1); clipping keeps the gathers in range, masking drops them.
    tags = jnp.clip(targets, 0, end.shape[-1] - 1).astype(jnp.int32)
    prev = jnp.concatenate([tags[:, :1], tags[:, :-1]], axis=1)  # any row works at t = 0
    from_prev = jnp.take_along_axis(edges, prev[:, :, None, None], axis=2)[:, :, 0]
    steps = jnp.take_along_axis(from_prev, tags[:, :, None], axis=2)[:, :, 0]
    length = real.sum(axis=1)
    last = jnp.take_along_axis(tags, jnp.maximum(length - 1, 0)[:, None], axis=1)
    gold = jnp.where(real, steps, 0.0).sum(axis=1) + jnp.take_along_axis(end, last, axis=1)[:, 0]

    def forward_step(alpha, xs):
        edge, is_real = xs
        new = jax.nn.logsumexp(alpha[:, :, None] + edge, axis=1)
        return jnp.where(is_real[:, None], new, alpha), None

    alpha, _ = jax.lax.scan(forward_step, edges[:, 0, 0], later)
    log_z = jax.nn.logsumexp(alpha + end, axis=-1)
    return jnp.where(length > 0, log_z - gold, 0.0)


def crf_loss(potentials, targets, weights):
    """Mean NLL over the rows that have at least one real token (empty rows are batch padding)."""
    rows = (weights > 0).any(axis=1)
    return crf_nll(potentials, targets, weights).sum() / jnp.maximum(rows.sum(), 1)


def CRFLoss():  # pylint: disable=invalid-name
    """Loss layer (potentials, targets, weights) -> scalar, for ``TrainTask(loss_layer=...)``."""
    return base.Fn("CRFLoss", crf_loss)


def viterbi_decode(potentials, mask):
    """Best tag path (batch, length) int32 under the packed potentials; 0 at padded positions."""
    edges, end, real, later = _unpack(potentials, mask)
    n = end.shape[-1]

    def best_step(score, xs):
        edge, is_real = xs
        candidates = score[:, :, None] + edge
        keep = is_real[:, None]
        # Over padding the score stays put and each tag points back at itself, so the trace-back
        # carries the last real tag through the padding unchanged.
        back = jnp.where(keep, jnp.argmax(candidates, axis=1), jnp.arange(n))
        return jnp.where(keep, candidates.max(axis=1), score), back

    score, backs = jax.lax.scan(best_step, edges[:, 0, 0], later)

    def trace_step(tag, back):
        return jnp.take_along_axis(back, tag[:, None], axis=1)[:, 0], tag

    last = jnp.argmax(score + end, axis=-1)
    first, rest = jax.lax.scan(trace_step, last, backs, reverse=True)
    path = jnp.concatenate([first[:, None], jnp.swapaxes(rest, 0, 1)], axis=1)
    return jnp.where(real, path, 0).astype(jnp.int32)


def CRFDecode():  # pylint: disable=invalid-name
    """Layer (potentials, mask) -> best tag paths, see :func:`viterbi_decode`."""
    return base.Fn("CRFDecode", viterbi_decode)


class CRF(base.Layer):
    """Linear-chain CRF scores on top of emissions: (batch, length, n) -> packed potentials.

    Weights: ``(transitions (n, n) from tag i to tag j, start (n,), end (n,))``. The optional
    ``allowed = (start_allowed (n,), transition_allowed (n, n))`` booleans are fixed constants,
    not weights; see the module docstring for the output packing and the constraints.
    """

    def __init__(self, n_tags, allowed=None, initializer=init.RandomUniformInitializer(0.01)):
        super().__init__(name=f"CRF_{n_tags}")
        self._n_tags = n_tags
        self._initializer = initializer
        self._allowed = None
        if allowed is not None:
            start_ok, transition_ok = (np.asarray(a, dtype=bool) for a in allowed)
            if start_ok.shape != (n_tags,) or transition_ok.shape != (n_tags, n_tags):
                raise ValueError(f"allowed must be shaped ({n_tags},) and ({n_tags}, {n_tags}), "
                                 f"got {start_ok.shape} and {transition_ok.shape}")
            self._allowed = (start_ok, transition_ok)

    def forward(self, emissions):
        transitions, start, end = self.weights
        if self._allowed is not None:
            start_ok, transition_ok = self._allowed
            start = jnp.where(start_ok, start, NEG)
            transitions = jnp.where(transition_ok, transitions, NEG)
        return crf_potentials(emissions, transitions, start, end)

    def init_weights_and_state(self, input_signature):
        if input_signature.shape[-1] != self._n_tags:
            raise ValueError(f"CRF({self._n_tags}) got emissions for {input_signature.shape[-1]} tags")
        n = self._n_tags
        rngs = fastmath.random.split(self.rng, 3)
        self.weights = tuple(self._initializer(shape, rng)
                             for shape, rng in zip(((n, n), (n,), (n,)), rngs))


def iob2_allowed_transitions(tag_names):
    """(start_allowed (n,), transition_allowed[from, to] (n, n)) for IOB2 tags "O", "B-X", "I-X".

    ``I-X`` may only follow ``B-X`` or ``I-X`` and never starts a sentence; ``O`` and ``B-X`` go
    anywhere. Any other name (a PAD tag, IOBES's ``E-``/``S-``) is never allowed, so the decoder
    never emits it on a real token; that is harmless for PAD, which the mask keeps off real tokens.
    """
    def parse(name):
        prefix, _, kind = name.partition("-")
        if name == "O" or (prefix in ("B", "I") and kind):
            return prefix, kind
        return None, None

    parsed = [parse(name) for name in tag_names]
    start = np.array([prefix in ("O", "B") for prefix, _ in parsed])
    transition = np.array([[source is not None and (target in ("O", "B") or (
        target == "I" and source in ("B", "I") and source_kind == target_kind))
        for target, target_kind in parsed] for source, source_kind in parsed], dtype=bool)
    return start, transition
