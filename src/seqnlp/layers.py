"""Layers that Trax lacks or runs slowly, shared by the tasks, each tested against a plain NumPy reference.

GRU
---

:func:`GRU` is ``trax.layers.GRU`` (same weights, same results, so trax checkpoints load) with a faster
training and evaluation pass, :func:`gru_sequence`: the input projections of all time steps are one matrix
product before the loop, and the hand-written gradient computes the weight gradients as one product after
the backward loop instead of one per step. ``benchmarks/recurrent.py`` times it beside trax's GRU and PyTorch.

Bidirectional LSTM
------------------

:func:`BidirectionalLSTM` (the NER tagger's and, optionally, the question encoder's) is two of trax's LSTMs;
the backward one reads each row from its own last real token, so padding never reaches a row's states.

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

Compiled forward pass
---------------------

A trax layer's own call runs op by op: a question through the question encoder takes ~150 ms instead of
~1 ms, and tagging GMB's test split at 4x its size took 83 s and 2.8 GB, growing with every batch, instead
of 19 s and 1.4 GB. :func:`compiled` is the layer's forward pass as one function of its input, compiled once
per input shape, for a trained layer in eval or predict mode.
"""

import jax
import numpy as np

from seqnlp.compat import trax  # noqa: F401  (applies the trax fixes before trax is used)
from trax import fastmath
from trax import layers as tl
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


# ---- GRU with the input projections outside the time loop ------------------------------------------------


def _split_gru_weights(w1, w2, d_in):
    """GRUCell's two matrices, rows for ``x`` first, as the input projection of all three parts (update and
    reset gates, candidate; d_in x 3n) and the recurrent matrices of the gates (n x 2n) and the candidate (n x n)."""
    return jnp.concatenate([w1[:d_in], w2[:d_in]], axis=1), w1[d_in:], w2[d_in:]


def _gru_forward(xs, h0, w1, b1, w2, b2):
    """trax's GRUCell equations over xs (batch, time, d_in); returns all states and what backward needs."""
    n = h0.shape[-1]
    input_weights, gates_h, candidate_h = _split_gru_weights(w1, w2, xs.shape[-1])
    # The input half of both matrices for every time step at once: XLA runs this one large product on every
    # core, where the small per-step products inside the loop run on one.
    projected = jnp.einsum("btd,dk->tbk", xs, input_weights) + jnp.concatenate([b1, b2])

    def step(h, x_part):
        gates = jax.nn.sigmoid(x_part[:, :2 * n] + h @ gates_h)
        candidate = jnp.tanh(x_part[:, 2 * n:] + (gates[:, n:] * h) @ candidate_h)
        new_h = gates[:, :n] * h + (1 - gates[:, :n]) * candidate
        return new_h, (new_h, gates, candidate)

    h_last, (states, gates, candidate) = jax.lax.scan(step, h0, projected)
    previous = jnp.concatenate([h0[None], states[:-1]])
    return jnp.swapaxes(states, 0, 1), h_last, (previous, gates, candidate)


@jax.custom_vjp
def gru_sequence(xs, h0, w1, b1, w2, b2):
    """States (batch, time, n) and the last state of trax's GRU over xs (batch, time, d_in) from h0 (batch, n).

    Weights as trax's ``GRUCell``: ``w1`` (d_in + n, 2n) for the update and reset gates, ``w2`` (d_in + n, n)
    for the candidate, rows for ``x`` first. Its gradient is written out (see ``_gru_backward``) so that the
    weight gradients are also single large products over all time steps, where autodiff of a scan
    accumulates them one small product per step.
    """
    states, h_last, _ = _gru_forward(xs, h0, w1, b1, w2, b2)
    return states, h_last


def _gru_sequence_forward(xs, h0, w1, b1, w2, b2):
    states, h_last, saved = _gru_forward(xs, h0, w1, b1, w2, b2)
    return (states, h_last), (xs, w1, w2, saved)


def _gru_backward(residuals, cotangents):
    xs, w1, w2, (previous, gates, candidate) = residuals
    d_states, d_last = cotangents
    n = w2.shape[1]
    input_weights, gates_h, candidate_h = _split_gru_weights(w1, w2, xs.shape[-1])

    def step(d_h, saved):
        d_state, h, gates, candidate = saved
        u, r = gates[:, :n], gates[:, n:]
        d_new = d_state + d_h
        d_candidate_pre = d_new * (1 - u) * (1 - candidate ** 2)
        d_reset_h = d_candidate_pre @ candidate_h.T
        d_gates_pre = jnp.concatenate([d_new * (h - candidate), d_reset_h * h], axis=-1) * gates * (1 - gates)
        d_h = d_new * u + d_reset_h * r + d_gates_pre @ gates_h.T
        return d_h, (d_gates_pre, d_candidate_pre)

    d_h0, (d_gates_pre, d_candidate_pre) = jax.lax.scan(
        step, d_last, (jnp.swapaxes(d_states, 0, 1), previous, gates, candidate), reverse=True)
    d_pre = jnp.concatenate([d_gates_pre, d_candidate_pre], axis=-1)  # (time, batch, 3n)
    d_xs = jnp.einsum("tbk,dk->btd", d_pre, input_weights)
    d_input_weights = jnp.einsum("btd,tbk->dk", xs, d_pre)
    d_w1 = jnp.concatenate([d_input_weights[:, :2 * n], jnp.einsum("tbn,tbk->nk", previous, d_gates_pre)])
    d_w2 = jnp.concatenate([d_input_weights[:, 2 * n:],
                            jnp.einsum("tbn,tbk->nk", gates[..., n:] * previous, d_candidate_pre)])
    d_bias = d_pre.sum(axis=(0, 1))
    return d_xs, d_h0, d_w1, d_bias[:2 * n], d_w2, d_bias[2 * n:]


gru_sequence.defvjp(_gru_sequence_forward, _gru_backward)


class _GRUScan(tl.Scan):
    """trax's ``Scan(GRUCell)`` (the same weights, so the same checkpoints) running :func:`gru_sequence`.

    Predict mode, which carries the state from one call to the next, is trax's own code.
    """

    def forward(self, inputs):
        if self._mode == "predict":
            return super().forward(inputs)
        xs, h0 = inputs
        return gru_sequence(xs, h0, *self.weights[0])


def GRU(n_units, mode="train"):  # pylint: disable=invalid-name
    """``trax.layers.GRU``: its weights and results, computed by :func:`gru_sequence` outside predict mode."""
    return tl.Serial(
        tl.Branch([], tl.MakeZeroState(depth_multiplier=1)),
        _GRUScan(tl.GRUCell(n_units=n_units), axis=1, mode=mode),
        tl.Select([0], n_in=2),
        name=f"GRU_{n_units}", sublayers_to_print=[],
    )


# ---- bidirectional LSTM over padded rows -----------------------------------------------------------------


def reverse_within_length(features, ids):
    """Reverse each row's real tokens (those with id > 0), leaving the padding at the end in place."""
    lengths = (ids > 0).sum(axis=1, keepdims=True)
    positions = jnp.arange(ids.shape[1])[None, :]
    index = jnp.where(positions < lengths, lengths - 1 - positions, positions)
    return jnp.take_along_axis(features, index[..., None], axis=1)


def BidirectionalLSTM(n_units, mode="train"):  # pylint: disable=invalid-name
    """(features, ids) -> forward and backward LSTM states, concatenated; the backward pass skips padding.

    The backward LSTM reads each row from its own last real token (``ids`` > 0), not from the end of the
    padding, so a short row's states do not depend on how long the other rows of its batch are.
    """
    reverse = tl.Fn("ReverseWithinLength", reverse_within_length)
    return tl.Serial(
        tl.Branch(
            [tl.Select([0], n_in=2), tl.LSTM(n_units, mode=mode)],
            [tl.Select([0, 1, 1]), reverse, tl.Parallel(tl.LSTM(n_units, mode=mode), None), reverse],
        ),
        tl.Concatenate(),
    )


# ---- a trained layer's forward pass, compiled -------------------------------------------------------------

def compiled(layer):
    """``layer``'s forward pass with its current weights and state as one compiled function of its input.

    For a layer in eval or predict mode, where nothing is random. Its rngs are set here, outside the trace:
    trax draws a layer's rng when it is first read, and one drawn inside the trace would stay in the layer
    as a leaked tracer, breaking its own call afterwards.
    """
    layer.rng = fastmath.random.get_prng(0)
    forward = fastmath.jit(lambda x, weights, state, rng: layer.pure_fn(x, weights, state, rng)[0])
    weights, state, rng = layer.weights, layer.state, layer.rng
    return lambda x: forward(x, weights, state, rng)
