"""seqnlp.layers against brute force: every tag path enumerated in float64 NumPy."""

import itertools

import numpy as np
import pytest

from seqnlp.compat import trax
from seqnlp.layers import (CRF, CRFDecode, CRFLoss, crf_loss, crf_nll, crf_potentials,
                           iob2_allowed_transitions, viterbi_decode)
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
