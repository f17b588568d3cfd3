"""Batching helpers shared by tasks: padded evaluation batches and an endless shuffled stream."""

import numpy as np


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
    generator = np.random.default_rng(seed)
    while True:
        for index in generator.permutation(len(examples)):
            yield examples[index]
