"""Batching helpers shared by tasks: padded evaluation batches and an endless shuffled stream."""

import collections.abc

import numpy as np

from seqnlp.errors import UserError


def pad(sequences, length=None):
    """Right-pad sequences (int arrays of any shape after the first axis) with 0 to one (batch, length, ...) array."""
    length = length or max(len(sequence) for sequence in sequences)
    padded = np.zeros((len(sequences), length, *np.shape(sequences[0])[1:]), dtype=np.int32)
    for row, sequence in enumerate(sequences):
        padded[row, : len(sequence)] = sequence
    return padded


class PaddedBatches:
    """(indices, padded array) over all sequences, shortest first to waste little padding, each batch made only
    when it is reached: a whole split padded at once would hold a copy of it that grows with the data.
    ``len()`` is the number of batches (for a progress bar). With ``length_step``, batches are padded to a
    multiple of it, so that a few compiled shapes serve every batch."""

    def __init__(self, sequences, batch_size, length_step=1):
        self.sequences, self.batch_size, self.length_step = sequences, batch_size, length_step
        # Sequences from disk know their lengths, where len() of each would read every row once more.
        lengths = sequences.lengths if hasattr(sequences, "lengths") else [len(sequence) for sequence in sequences]
        self.lengths = np.asarray(lengths)
        self.order = np.argsort(self.lengths, kind="stable")

    def __len__(self):
        return -(-len(self.order) // self.batch_size)

    def __iter__(self):
        for start in range(0, len(self.order), self.batch_size):
            indices = self.order[start : start + self.batch_size]
            longest = int(self.lengths[indices].max())
            yield indices, pad([self.sequences[i] for i in indices], -(-longest // self.length_step) * self.length_step)


class Zipped(collections.abc.Sequence):
    """``zip`` that can be indexed: item i is the tuple of each sequence's item i, made when it is asked for, so
    that a stream drawing from a split does not hold a tuple per example."""

    def __init__(self, *sequences):
        self.sequences = sequences

    def __len__(self):
        return min(len(sequence) for sequence in self.sequences)

    def __getitem__(self, index):
        return tuple(sequence[index] for sequence in self.sequences)


def endless_shuffled(examples, seed):
    """Yield the examples forever, reshuffled with a seeded generator on each pass."""
    if len(examples) == 0:
        raise UserError("no examples to draw batches from: a split is empty (see the filter stage's stats.json)")
    generator = np.random.default_rng(seed)
    while True:
        for index in generator.permutation(len(examples)):
            yield examples[index]


class CountingStream:
    """An iterator that counts what it yields, so that a rebuilt stream can skip to the same place."""

    def __init__(self, iterable):
        self._iterator = iter(iterable)
        self.consumed = 0

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self._iterator)
        self.consumed += 1
        return item

    def skip_to(self, position):
        if position < self.consumed:
            raise ValueError(f"cannot rewind a stream from {self.consumed} to {position}")
        while self.consumed < position:
            next(self)
