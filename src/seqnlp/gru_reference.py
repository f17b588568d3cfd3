"""The seed's GRU equations in plain NumPy, to check trax's GRUCell against.

    Γu = σ(Wu·[h, x] + bu)          update gate
    Γr = σ(Wr·[h, x] + br)          relevance (reset) gate
    c  = tanh(Wc·[Γr * h, x] + bc)  candidate
    h' = Γu * c + (1 - Γu) * h

trax's GRUCell computes the same thing with the update gate written the other way round
(``h' = u * h + (1 - u) * c``, so ``u = 1 - Γu``), on ``[x, h]`` instead of ``[h, x]``, with the
two gates stacked in one matrix. :func:`from_trax_weights` translates its weights.
"""

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def gru_step(x, h, weights):
    """One step of the seed's equations; x (batch, d_in), h (batch, n) -> new h (batch, n)."""
    h_x = np.concatenate([h, x], axis=-1)
    update = sigmoid(h_x @ weights["Wu"] + weights["bu"])
    relevance = sigmoid(h_x @ weights["Wr"] + weights["br"])
    candidate = np.tanh(np.concatenate([relevance * h, x], axis=-1) @ weights["Wc"] + weights["bc"])
    return update * candidate + (1.0 - update) * h


def gru_states(xs, h0, weights):
    """Hidden state after each step of xs (batch, time, d_in): (batch, time, n)."""
    states, h = [], h0
    for t in range(xs.shape[1]):
        h = gru_step(xs[:, t], h, weights)
        states.append(h)
    return np.stack(states, axis=1)


def from_trax_weights(trax_weights, d_in):
    """The seed's Wu, bu, Wr, br, Wc, bc from trax GRUCell weights (w1, b1, w2, b2)."""
    w1, b1, w2, b2 = (np.asarray(w, dtype=np.float64) for w in trax_weights)
    n = w2.shape[1]

    def x_rows_last(w):  # trax multiplies [x, h]; the seed multiplies [h, x]
        return np.concatenate([w[d_in:], w[:d_in]], axis=0)

    return {
        "Wu": -x_rows_last(w1[:, :n]), "bu": -b1[:n],  # σ(-z) = 1 - σ(z): trax's u is 1 - Γu
        "Wr": x_rows_last(w1[:, n:]), "br": b1[n:],
        "Wc": x_rows_last(w2), "bc": b2,
    }
