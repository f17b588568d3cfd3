"""seqnlp.layers against plain references: the CRF against every tag path enumerated in float64 NumPy, the GRU
against the seed's equations in NumPy and against trax's own GRU."""

import itertools

import numpy as np
import pytest

from seqnlp.compat import trax
from seqnlp import gru_reference
from seqnlp.layers import (CRF, GRU, BidirectionalLSTM, CRFDecode, CRFLoss, compiled, crf_loss, crf_nll, crf_potentials,
                           gru_sequence, iob2_allowed_transitions, reverse_within_length, viterbi_decode)
from trax import layers as tl
from trax import shapes
from trax.supervised import training

import jax

IOB2_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def random_crf(rng, n, allowed=None, scale=1.0):
    """A CRF layer with random (not near-zero) scores, and those scores in float64."""
    crf = CRF(n, allowed=allowed)
    crf.init(shapes.ShapeDtype((1, 1, n), np.float32))
    scores = tuple((scale * rng.normal(size=shape)).astype(np.float32) for shape in ((n, n), (n,), (n,)))
    crf.weights = scores
    return crf, tuple(s.astype(np.float64) for s in scores)


def path_score(emissions, scores, path):
    transitions, start, end = scores
    total = start[path[0]] + end[path[-1]] + sum(emissions[t, tag] for t, tag in enumerate(path))
    return total + sum(transitions[a, b] for a, b in zip(path, path[1:]))


def iob2_valid(names):
    previous = "O"
    for name in names:
        if name.startswith("I-") and previous[2:] != name[2:]:
            return False
        previous = name
    return all(name == "O" or name[:2] in ("B-", "I-") for name in names)


def all_paths(n, length, valid=None):
    return [p for p in itertools.product(range(n), repeat=length) if valid is None or valid(p)]


def log_sum_exp(values):
    values = np.asarray(values)
    return values.max() + np.log(np.exp(values - values.max()).sum())


def brute_force_nll(emissions, scores, path, valid=None):
    all_scores = [path_score(emissions, scores, p) for p in all_paths(emissions.shape[1], len(path), valid)]
    return log_sum_exp(all_scores) - path_score(emissions, scores, path)


def random_batch(rng, n, lengths, width):
    """Emissions, targets with junk (out-of-range ids too) on padding, and the trailing-padding mask."""
    emissions = rng.normal(size=(len(lengths), width, n)).astype(np.float32)
    targets = rng.integers(0, n, size=(len(lengths), width))
    mask = (np.arange(width) < np.array(lengths)[:, None]).astype(np.float32)
    targets = np.where(mask > 0, targets, rng.choice([-1, 0, n, n + 3], size=targets.shape)).astype(np.int32)
    return emissions, targets, mask


@pytest.mark.parametrize("n, lengths, width", [
    (3, [4, 4, 4], 4),      # no padding
    (4, [4, 2, 1], 4),      # trailing padding, length 1
    (3, [1, 1], 1),         # length 1 only
    (4, [3, 1, 2], 3),
])
def test_loss_equals_brute_force_mean_nll(n, lengths, width):
    rng = np.random.default_rng(n * 100 + width)
    crf, scores = random_crf(rng, n)
    emissions, targets, mask = random_batch(rng, n, lengths, width)
    expected = [brute_force_nll(emissions[b, :k].astype(np.float64), scores, targets[b, :k])
                for b, k in enumerate(lengths)]
    potentials = crf(emissions)
    assert potentials.shape == (len(lengths), width, n + 1, n)
    np.testing.assert_allclose(crf_nll(potentials, targets, mask), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(CRFLoss()((potentials, targets, mask)), np.mean(expected), rtol=1e-5)


def test_rows_without_tokens_add_nothing_and_are_not_counted():
    rng = np.random.default_rng(1)
    crf, scores = random_crf(rng, 3)
    emissions, targets, mask = random_batch(rng, 3, [3, 0, 2], 3)
    potentials = crf(emissions)
    nll = np.asarray(crf_nll(potentials, targets, mask))
    assert nll[1] == 0.0
    np.testing.assert_allclose(crf_loss(potentials, targets, mask), (nll[0] + nll[2]) / 2, rtol=1e-6)
    assert float(crf_loss(potentials, targets, np.zeros_like(mask))) == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_viterbi_equals_brute_force_argmax(seed):
    rng = np.random.default_rng(seed)
    n, lengths = 4, [4, 3, 1, 2]
    crf, scores = random_crf(rng, n)
    emissions, _, mask = random_batch(rng, n, lengths, 4)
    decoded = np.asarray(jax.jit(viterbi_decode)(crf(emissions), mask))
    assert decoded.dtype == np.int32
    for b, k in enumerate(lengths):
        best = max(all_paths(n, k), key=lambda p: path_score(emissions[b].astype(np.float64), scores, p))
        assert tuple(decoded[b, :k]) == best
        assert (decoded[b, k:] == 0).all()
    np.testing.assert_array_equal(CRFDecode()((crf(emissions), mask)), decoded)


def test_iob2_allowed_transitions():
    start, transition = iob2_allowed_transitions(["PAD"] + IOB2_TAGS)
    np.testing.assert_array_equal(start, [False, True, True, False, True, False])
    expected = np.array([
        # to: PAD  O  B-PER I-PER B-LOC I-LOC
        [0, 0, 0, 0, 0, 0],  # from PAD
        [0, 1, 1, 0, 1, 0],  # from O
        [0, 1, 1, 1, 1, 0],  # from B-PER
        [0, 1, 1, 1, 1, 0],  # from I-PER
        [0, 1, 1, 0, 1, 1],  # from B-LOC
        [0, 1, 1, 0, 1, 1],  # from I-LOC
    ], dtype=bool)
    np.testing.assert_array_equal(transition, expected)


def valid_path(path):
    return iob2_valid([IOB2_TAGS[t] for t in path])


def test_constrained_loss_equals_brute_force_over_allowed_paths():
    rng = np.random.default_rng(7)
    n, lengths = len(IOB2_TAGS), [4, 2, 1]
    crf, scores = random_crf(rng, n, allowed=iob2_allowed_transitions(IOB2_TAGS))
    emissions, targets, mask = random_batch(rng, n, lengths, 4)
    expected = []
    for b, k in enumerate(lengths):
        allowed = all_paths(n, k, valid_path)
        targets[b, :k] = allowed[rng.integers(len(allowed))]
        expected.append(brute_force_nll(emissions[b, :k].astype(np.float64), scores, targets[b, :k], valid_path))
    np.testing.assert_allclose(crf_nll(crf(emissions), targets, mask), expected, rtol=1e-5, atol=1e-5)
    # The same rows scored without constraints spread mass over invalid paths too: a larger NLL.
    free = np.asarray(crf_nll(crf_potentials(emissions, *crf.weights), targets, mask))
    assert (free[:2] > np.asarray(expected[:2]) + 1e-3).all()


def test_constrained_decoding_never_emits_invalid_iob2():
    rng = np.random.default_rng(3)
    n, rows, width = len(IOB2_TAGS), 2000, 6
    lengths = rng.integers(1, width + 1, size=rows)
    crf, scores = random_crf(rng, n, allowed=iob2_allowed_transitions(IOB2_TAGS), scale=3.0)
    emissions, _, mask = random_batch(rng, n, lengths, width)
    emissions[:, :, [2, 4]] += 2.0  # favour I- tags so the constraints have work to do
    decode = jax.jit(viterbi_decode)
    constrained = np.asarray(decode(crf(emissions), mask))
    free = np.asarray(decode(crf_potentials(emissions, *crf.weights), mask))
    assert not all(valid_path(free[b, :k]) for b, k in enumerate(lengths))
    assert all(valid_path(constrained[b, :k]) for b, k in enumerate(lengths))
    for b in range(5):  # and it is the best valid path, not just any valid one
        k = lengths[b]
        best = max(all_paths(n, k, valid_path),
                   key=lambda p: path_score(emissions[b].astype(np.float64), scores, p))
        assert tuple(constrained[b, :k]) == best


def test_gradient_is_expected_minus_gold_transition_counts():
    rng = np.random.default_rng(5)
    n, k = 3, 3
    _, scores = random_crf(rng, n)
    emissions, targets, mask = random_batch(rng, n, [k], k)
    transitions, start, end = (s.astype(np.float32) for s in scores)

    def loss(transitions):
        return crf_loss(crf_potentials(emissions, transitions, start, end), targets, mask)

    grad = np.asarray(jax.grad(loss)(transitions))
    assert np.isfinite(grad).all()
    paths = all_paths(n, k)
    log_p = np.array([path_score(emissions[0].astype(np.float64), scores, p) for p in paths])
    p = np.exp(log_p - log_sum_exp(log_p))
    expected = np.zeros((n, n))
    for weight, path in zip(p, paths):
        for a, b in zip(path, path[1:]):
            expected[a, b] += weight
    for a, b in zip(targets[0], targets[0][1:]):
        expected[a, b] -= 1
    np.testing.assert_allclose(grad, expected, atol=1e-5)


@pytest.mark.slow
def test_training_loop_learns_a_fixed_batch_under_constraints():
    rng = np.random.default_rng(0)
    n, width = len(IOB2_TAGS), 5
    tokens = rng.integers(1, 10, size=(4, width)).astype(np.int32)
    mask = (np.arange(width) < np.array([[5], [3], [1], [4]])).astype(np.float32)
    tags = np.array([[1, 3, 4, 4, 0], [1, 2, 0, 0, 0], [3, 0, 0, 0, 0], [0, 3, 4, 1, 0]], np.int32)
    model = tl.Serial(tl.Embedding(10, 8), tl.Dense(n), CRF(n, allowed=iob2_allowed_transitions(IOB2_TAGS)))
    batch = (tokens, tags, mask)
    task = training.TrainTask(itertools.repeat(batch), CRFLoss(), trax.optimizers.Adam(0.05))
    loop = training.Loop(model, [task], random_seed=0)

    def loss():
        return float(CRFLoss()((loop.model(tokens), tags, mask)))

    before = loss()
    loop.run(20)
    after = loss()
    assert np.isfinite(after) and after < 0.5 * before
    decoded = np.asarray(viterbi_decode(loop.model(tokens), mask))
    np.testing.assert_array_equal(decoded, np.where(mask > 0, tags, 0))


def random_gru_inputs(seed, batch=3, time=6, d_in=5, n_units=7):
    """Inputs, a start state and GRUCell weights (w1, b1, w2, b2) large enough that no gate sits near 0.5."""
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(batch, time, d_in)).astype(np.float32)
    h0 = rng.normal(size=(batch, n_units)).astype(np.float32)
    shapes_ = ((d_in + n_units, 2 * n_units), (2 * n_units,), (d_in + n_units, n_units), (n_units,))
    weights = tuple(rng.normal(scale=0.7, size=shape).astype(np.float32) for shape in shapes_)
    return xs, h0, weights


def test_gru_sequence_computes_the_seed_equations():
    xs, h0, weights = random_gru_inputs(0)
    states, last = gru_sequence(xs, h0, *weights)
    reference = gru_reference.gru_states(xs, h0, gru_reference.from_trax_weights(weights, xs.shape[-1]))
    np.testing.assert_allclose(np.asarray(states), reference, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(last), reference[:, -1], rtol=1e-4, atol=1e-5)
    assert np.abs(reference - h0[:, None]).max() > 0.1


def test_gru_sequence_gradient_equals_autodiff_of_the_plain_loop():
    xs, h0, weights = random_gru_inputs(1)

    def plain_loop(xs, h0, w1, b1, w2, b2):  # trax's GRUCell, step by step, differentiated by jax
        def step(h, x):
            u, r = np.split(jax.nn.sigmoid(jax.numpy.concatenate([x, h], axis=-1) @ w1 + b1), 2, axis=-1)
            new_h = u * h + (1 - u) * jax.numpy.tanh(jax.numpy.concatenate([x, r * h], axis=-1) @ w2 + b2)
            return new_h, new_h
        last, states = jax.lax.scan(step, h0, jax.numpy.swapaxes(xs, 0, 1))
        return jax.numpy.swapaxes(states, 0, 1), last

    rng = np.random.default_rng(2)
    (states, last), backward = jax.vjp(gru_sequence, xs, h0, *weights)
    (plain_states, plain_last), plain_backward = jax.vjp(plain_loop, xs, h0, *weights)
    np.testing.assert_allclose(np.asarray(states), np.asarray(plain_states), rtol=1e-5, atol=1e-6)
    # Cotangents on every state and on the last state, as a layer that also uses the final state would give.
    cotangents = (rng.normal(size=states.shape).astype(np.float32), rng.normal(size=last.shape).astype(np.float32))
    for name, ours, theirs in zip(["xs", "h0", "w1", "b1", "w2", "b2"], backward(cotangents), plain_backward(cotangents)):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-4, atol=1e-5, err_msg=name)
        assert np.abs(np.asarray(theirs)).max() > 1e-2, name


def test_gru_layer_is_trax_gru_with_the_same_weights_results_and_gradients():
    xs, _, _ = random_gru_inputs(3, d_in=7)
    theirs, ours = tl.GRU(7), GRU(7)
    theirs.init(shapes.signature(xs))
    ours.init(shapes.signature(xs))
    # The same weight tree, so a checkpoint of either model loads into the other.
    assert jax.tree_util.tree_structure(ours.weights) == jax.tree_util.tree_structure(theirs.weights)
    assert [w.shape for w in jax.tree_util.tree_leaves(ours.weights)] == \
        [w.shape for w in jax.tree_util.tree_leaves(theirs.weights)]
    assert ours.name == theirs.name == "GRU_7"
    rng = np.random.default_rng(4)
    weights = jax.tree_util.tree_map(lambda w: rng.normal(scale=0.7, size=w.shape).astype(np.float32), theirs.weights)
    target = rng.normal(size=xs.shape).astype(np.float32)

    def loss(layer):
        def value(weights, xs):
            states, _ = layer.pure_fn(xs, weights, layer.state, jax.random.PRNGKey(0))
            return ((states - target) ** 2).sum()
        return jax.value_and_grad(value, argnums=(0, 1))(weights, xs)

    (our_loss, our_gradients), (their_loss, their_gradients) = loss(ours), loss(theirs)
    np.testing.assert_allclose(our_loss, their_loss, rtol=1e-5)
    for mine, trax_own in zip(jax.tree_util.tree_leaves(our_gradients), jax.tree_util.tree_leaves(their_gradients)):
        np.testing.assert_allclose(np.asarray(mine), np.asarray(trax_own), rtol=1e-4, atol=1e-5)


def test_gru_layer_in_predict_mode_steps_through_the_same_states():
    xs, _, _ = random_gru_inputs(5, d_in=7)
    whole, stepwise = GRU(7), GRU(7, mode="predict")
    whole.init(shapes.signature(xs))
    stepwise.init(shapes.signature(xs[:, :1]))
    stepwise.weights = whole.weights
    one_at_a_time = np.concatenate([np.asarray(stepwise(xs[:, t:t + 1])) for t in range(xs.shape[1])], axis=1)
    np.testing.assert_allclose(one_at_a_time, np.asarray(whole(xs)), rtol=1e-5, atol=1e-6)


def test_reverse_within_length_reverses_real_tokens_and_leaves_padding():
    features = np.arange(2 * 4 * 1, dtype=np.float32).reshape(2, 4, 1)
    ids = np.array([[5, 6, 7, 0], [5, 6, 7, 8]])
    reversed_ = np.asarray(reverse_within_length(features, ids))[..., 0]
    assert reversed_.tolist() == [[2, 1, 0, 3], [7, 6, 5, 4]]


def test_bidirectional_lstm_states_of_a_row_do_not_depend_on_its_padding():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(1, 4, 5)).astype(np.float32)  # trax's LSTM wants n_units inputs
    ids = np.array([[4, 5, 6, 7]])
    padded_features = np.concatenate([features, rng.normal(size=(1, 3, 5)).astype(np.float32)], axis=1)
    padded_ids = np.array([[4, 5, 6, 7, 0, 0, 0]])
    layer = BidirectionalLSTM(5, mode="eval")
    layer.init(shapes.signature((padded_features, padded_ids)))
    states = np.asarray(layer((features, ids)))
    padded_states = np.asarray(layer((padded_features, padded_ids)))
    assert states.shape == (1, 4, 10) and padded_states.shape == (1, 7, 10)
    np.testing.assert_allclose(padded_states[:, :4], states, rtol=1e-5, atol=1e-6)
    forward_cell, backward_cell = _cells(layer, "LSTMCell")
    for cell, direction, half in [(forward_cell, lambda x: x, states[..., :5]),
                                  (backward_cell, lambda x: x[:, ::-1], states[..., 5:])]:
        alone = tl.LSTM(5, mode="eval")
        alone.init(shapes.signature(features))
        [alone_cell] = _cells(alone, "LSTMCell")
        alone_cell.weights = cell.weights
        np.testing.assert_allclose(half, direction(np.asarray(alone(direction(features)))), rtol=1e-5, atol=1e-6)


def _cells(layer, name):
    """The sublayers called ``name``, depth first in order."""
    found = [layer] if layer.name == name else []
    return found + [cell for sublayer in layer.sublayers for cell in _cells(sublayer, name)]


def test_a_compiled_layer_gives_the_layer_s_results_traces_once_per_shape_and_leaves_the_layer_callable():
    traced_shapes = []

    def tracing(states):
        traced_shapes.append(states.shape)
        return states

    layer = tl.Serial(BidirectionalLSTM(5, mode="eval"), tl.Fn("Traced", tracing), tl.Dense(3))
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(2, length, 5)).astype(np.float32), rng.integers(1, 9, size=(2, length)))
               for length in (4, 4, 6)]
    layer.init(shapes.signature(batches[0]))
    traced_shapes.clear()  # init traced the layer once
    forward = compiled(layer)
    results = [np.asarray(forward(batch)) for batch in batches]
    assert traced_shapes == [(2, 4, 10), (2, 6, 10)]
    for batch, result in zip(batches, results):
        np.testing.assert_allclose(result, np.asarray(layer(batch)), rtol=1e-5, atol=1e-6)
