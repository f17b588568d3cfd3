import numpy as np
import pytest

from seqnlp import artifacts
from seqnlp.batching import PaddedBatches, pad


class Watched:
    """A sequence that records when its values are read, as padding it into a batch does."""

    def __init__(self, values, reads):
        self.values, self.reads = np.asarray(values, np.int32), reads

    def __len__(self):
        return len(self.values)

    def __array__(self, dtype=None, copy=None):
        self.reads.append(len(self.values))
        return self.values if dtype is None else self.values.astype(dtype)


def test_batches_cover_every_sequence_once_shortest_first_and_their_count_is_known_beforehand():
    sequences = [np.arange(1, n + 1) for n in (5, 1, 3, 2, 4)]
    batches = PaddedBatches(sequences, batch_size=2)
    assert len(batches) == 3
    made = list(batches)
    assert [indices.tolist() for indices, _ in made] == [[1, 3], [2, 4], [0]]
    assert [batch.shape for _, batch in made] == [(2, 2), (2, 4), (1, 5)]
    for indices, batch in made:
        for row, index in enumerate(indices):
            assert batch[row, : len(sequences[index])].tolist() == sequences[index].tolist()
            assert not batch[row, len(sequences[index]):].any()


def test_a_batch_is_padded_only_when_it_is_reached():
    reads = []
    batches = iter(PaddedBatches([Watched(range(1, n + 1), reads) for n in (3, 1, 2, 4)], batch_size=2))
    next(batches)
    assert set(reads) == {1, 2}
    next(batches)
    assert set(reads) == {1, 2, 3, 4}


def test_batching_a_split_from_disk_reads_each_of_its_rows_once(tmp_path, row_reads):
    sequences = [np.arange(1, n + 1) for n in (5, 1, 3, 2, 4, 0, 6)]
    artifacts.save_sequences(tmp_path / "split.npz", sequences)
    loaded, _ = artifacts.load_sequences(tmp_path / "split.npz")
    row_reads.clear()  # loading read the lengths column
    batches = PaddedBatches(loaded, batch_size=3)
    assert row_reads == []
    made = list(batches)
    assert len(set(row_reads)) == len(row_reads) == len(sequences)
    assert [batch.shape for _, batch in made] == [(3, 2), (3, 5), (1, 6)]
    for indices, batch in made:
        for row, index in enumerate(indices):
            assert batch[row, : len(sequences[index])].tolist() == sequences[index].tolist()


@pytest.mark.parametrize("longest, padded_to", [(1, 4), (4, 4), (5, 8)])
def test_a_length_step_pads_to_its_next_multiple_and_keeps_the_rows_inner_shape(longest, padded_to):
    rows = [np.ones((longest, 3), np.int32), np.ones((1, 3), np.int32)]
    [(_, batch)] = PaddedBatches(rows, batch_size=8, length_step=4)
    assert batch.shape == (2, padded_to, 3)
    assert batch.sum() == 3 * (longest + 1)


def test_pad_fills_with_zeros_to_the_longest():
    assert pad([np.array([1, 2]), np.array([3])]).tolist() == [[1, 2], [3, 0]]
