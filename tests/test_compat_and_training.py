import itertools
import math

import numpy as np
import pytest

from seqnlp import compat
from seqnlp.compat import trax
from seqnlp.stages import train as train_stage
from trax import layers as tl
from trax.supervised import training


def test_tree_unflatten_copies_placeholders_but_never_compares_arrays():
    import jax.numpy as jnp

    tree = (jnp.zeros(2), (), [jnp.ones(3), ()])
    new_tree, rest = trax.fastmath.tree_unflatten(["a", "b", "c"], tree, copy_from_tree=[()])
    assert new_tree == ("a", (), ["b", ()]) and rest == ["c"]
    assert trax.fastmath.tree_unflatten is compat.tree_unflatten
    assert trax.fastmath.numpy.tree_unflatten is compat.tree_unflatten


def test_host_count_alias():
    import jax

    assert jax.host_count() == jax.process_count()


def one_batch_forever():
    x = np.random.default_rng(0).integers(1, 20, size=(8, 6)).astype(np.int32)
    return itertools.repeat((x, (x[:, 0] % 4).astype(np.int32), np.ones(8, np.float32)))


def tiny_loop(output_dir):
    model = tl.Serial(tl.Embedding(20, 16), tl.Mean(axis=1), tl.Dense(4), tl.LogSoftmax())
    task = training.TrainTask(one_batch_forever(), tl.WeightedCategoryCrossEntropy(), trax.optimizers.Adam(0.01),
                              n_steps_per_checkpoint=5)
    return training.Loop(model, [task], output_dir=str(output_dir), random_seed=0)


def flat_weights(layer):
    return [np.asarray(w) for w in trax.fastmath.tree_flatten(layer.weights)]


def test_a_new_loop_resumes_where_the_last_one_stopped(tmp_path):
    first = tiny_loop(tmp_path)
    first.run(5)
    resumed = tiny_loop(tmp_path)
    assert resumed.step == 5
    for saved, restored in zip(flat_weights(first.model), flat_weights(resumed.model)):
        np.testing.assert_array_equal(saved, restored)
    # Restored optimizer slots make the next steps match an uninterrupted run exactly.
    first.run(3)
    resumed.run(3)
    assert resumed.step == 8
    for uninterrupted, continued in zip(flat_weights(first.model), flat_weights(resumed.model)):
        np.testing.assert_array_equal(uninterrupted, continued)


def test_seeded_shuffle_is_a_permutation_that_depends_only_on_its_seed():
    items = list(range(50))
    first = list(compat.Shuffle(queue_size=8, seed=3)(iter(items)))
    np.random.seed(0)  # the global generator must not matter
    again = list(compat.Shuffle(queue_size=8, seed=3)(iter(items)))
    assert first == again and sorted(first) == items and first != items
    assert list(compat.Shuffle(queue_size=8, seed=4)(iter(items))) != first


def queue_shuffle(samples, generator, queue_size):
    samples = iter(samples)
    queue = [sample for _, sample in zip(range(queue_size), samples)]
    for sample in samples:
        index = generator.integers(len(queue))
        yield queue[index]
        queue[index] = sample


def test_seeded_shuffle_draws_independently_of_a_generator_seeded_with_the_same_number():
    # The tasks shuffle each epoch with default_rng(seed) before this queue; drawing the queue's slots from
    # the same stream replayed that shuffle's draws (slot = low bits of its swap indices) and slowed the
    # Shakespeare model's training badly (train loss at step 500: 2.79 instead of 2.40).
    items = range(5000)
    drawn = list(compat.Shuffle(queue_size=64, seed=0)(iter(items)))[:4000]
    assert drawn != list(queue_shuffle(iter(items), np.random.default_rng(0), 64))[:4000]


def test_loop_rng_round_trips(tmp_path):
    loop = tiny_loop(tmp_path)
    key = compat.loop_rng(loop)
    loop.run(2)
    assert not np.array_equal(compat.loop_rng(loop), key)
    compat.set_loop_rng(loop, key.tolist())
    np.testing.assert_array_equal(compat.loop_rng(loop), key)


def test_a_loop_without_summary_files_writes_nothing_and_still_saves_checkpoints_where_told(tmp_path):
    plain = tiny_loop(tmp_path / "plain")
    plain.run(6)  # its summary folder, and a checkpoint at step 5
    assert {"train", "model.pkl.gz"} <= {path.name for path in (tmp_path / "plain").iterdir()}
    quiet = compat.without_summary_files(tiny_loop(tmp_path / "quiet"))
    quiet.run(6)
    assert list((tmp_path / "quiet").iterdir()) == []
    (tmp_path / "saved").mkdir()
    compat.save_checkpoint_to(quiet, tmp_path / "saved")
    assert (tmp_path / "saved" / "model.pkl.gz").exists()


def test_save_checkpoint_to_writes_elsewhere_and_keeps_the_output_dir(tmp_path):
    loop = tiny_loop(tmp_path / "out")
    loop.run(1)
    compat.save_checkpoint_to(loop, tmp_path)
    assert (tmp_path / "model.pkl.gz").exists() and (tmp_path / "model.weights.npy.gz").exists()
    assert loop.output_dir == str(tmp_path / "out")


def test_learning_rate_schedule_follows_the_factors():
    schedule = train_stage.learning_rate_schedule(
        {"lr_factors": "constant * linear_warmup * cosine_decay", "learning_rate": 0.01, "warmup_steps": 10,
         "steps": 110})
    assert schedule(5) == pytest.approx(0.005)
    assert schedule(10) == pytest.approx(0.01)
    assert schedule(60) == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 50 / 101)))  # a 101-step cycle
    assert float(schedule(109)) < 1e-4


@pytest.mark.parametrize("warmup_steps", [0, 1, 200])
def test_the_last_update_uses_the_decayed_rate_not_the_next_cycle_peak(warmup_steps):
    steps = 3000
    schedule = train_stage.learning_rate_schedule(
        {"lr_factors": "constant * linear_warmup * cosine_decay", "learning_rate": 0.003,
         "warmup_steps": warmup_steps, "steps": steps})
    rates = [float(schedule(step)) for step in range(max(warmup_steps, 1), steps + 1)]
    assert rates == sorted(rates, reverse=True)
    assert rates[-1] < 1e-8
