"""Batching helpers shared by tasks: padded evaluation batches and an endless shuffled stream."""

import numpy as np

from seqnlp.errors import UserError


def pad(sequences, length=None):
    """Right-pad int sequences with 0 to a (batch, length) array."""
    length = length or max(len(sequence) for sequence in sequences)
    padded = np.zeros((len(sequences), length), dtype=np.int32)
    for row, sequence in enumerate(sequences):
        padded[row, : len(sequence)] = sequence
    return padded


def padded_batches(sequences, batch_size):
    """Yield (indices, padded array) over all sequences, shortest first to waste little padding."""
    order = np.argsort([len(sequence) for sequence in sequences], kind="stable")
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        yield indices, pad([sequences[i] for i in indices])


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
