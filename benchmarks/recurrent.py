"""Side by side, in one run: a training step of a recurrent model in trax (and, for the GRU, with seqnlp's
GRU) and of the same model in PyTorch, against this machine's matrix-multiply ceiling.

    python benchmarks/recurrent.py [--model gru-lm|lstm-tagger] [--batch B] [--length T] [--width N] [--runs 10]
                                   [--devices D]

``gru-lm`` (default: 32 lines x 32 characters, width 512) is the Shakespeare language model: Embedding(256, N),
2 x GRU(N), Dense(256), LogSoftmax, with trax's GRU, with ``seqnlp.layers.GRU`` and with PyTorch's.
``lstm-tagger`` (default: 64 sentences x 16 words, width 200) is the recurrent core of the NER tagger:
N-wide word features, trax's bidirectional LSTM as ``seqnlp.layers.BidirectionalLSTM`` builds it (the
backward direction reversed within each sentence), Dense(17), LogSoftmax; and PyTorch's bidirectional LSTM.

A step is the forward and backward pass (gradients of the masked cross-entropy, no optimizer update) on
random weights and ids; no data or checkpoint is needed. The ceiling is the best of 5 NumPy float32
4096 x 4096 products, measured before and after the steps (the better of the two). A step's FLOPs are
counted from its matrix multiplies (2mnk each forward, twice that backward), so ``of the ceiling`` is FLOP/s
reached over FLOP/s possible. For the GRU it also times the recurrent product alone, the one that must stay
inside the loop over time steps. ``--devices D`` adds a row for the seqnlp GRU step split over D host devices
(XLA's ``--xla_force_host_platform_device_count``, ``jax.pmap``, gradients averaged), the way to run the two
halves of a batch side by side on the two cores, if XLA ran them side by side. Each timing is the median of
``runs`` steps after a warm-up. PyTorch is a benchmark-only dependency
(``pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu``, or
``pip install -e .[bench]``); without it the PyTorch row is left out and the output says so.
"""

import argparse
import os
import statistics
import time

import numpy as np

N_TAGS = 17  # GMB's tag set
DEFAULTS = {"gru-lm": (32, 32, 512), "lstm-tagger": (64, 16, 200)}


def matmul_ceiling(size=4096, runs=5):
    """Best FLOP/s of a float32 size x size product with NumPy (OpenBLAS)."""
    a, b = (np.random.default_rng(seed).standard_normal((size, size), dtype=np.float32) for seed in (0, 1))
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 / best


def loop_product_speed(batch, width, length, runs=20):
    """FLOP/s of the GRU's recurrent product alone, (batch x N) by (N x 3N), as ``length`` dependent steps of a
    ``lax.scan``: the part of a step that no reordering can take out of the loop."""
    import jax

    recurrent = jax.numpy.asarray(np.random.default_rng(2).standard_normal((width, 3 * width), dtype=np.float32) * 0.03)

    def chain(h):
        return jax.lax.scan(lambda h, _: (jax.numpy.tanh(h @ recurrent)[:, :width], None), h, None, length=length)[0]

    run = jax.jit(chain)
    start = jax.numpy.zeros((batch, width), np.float32)
    seconds = median_seconds(lambda: jax.block_until_ready(run(start)), runs)
    return 2 * batch * width * 3 * width * length / seconds


def step_flops(model, batch, length, width, vocab):
    """Matrix-multiply FLOPs of one forward and backward pass: 3 x (2 m n k) per product."""
    if model == "gru-lm":  # 2 layers of [x, h] (2N) times the gates and candidate (3N), then the output layer
        per_token = 2 * 2 * (2 * width) * (3 * width) + 2 * width * vocab
    else:  # 2 directions of [x, h] (2N) times 4 gates (4N), then the tag layer over both directions
        per_token = 2 * 2 * (2 * width) * (4 * width) + 2 * (2 * width) * N_TAGS
    return 3 * batch * length * per_token


def median_seconds(step, runs):
    step()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def trax_step(model, inputs, targets, n_devices=1):
    """Gradients of the masked cross-entropy of ``model`` (log-probabilities out) on one batch, jitted; with
    ``n_devices`` > 1, the batch split over that many host devices (``jax.pmap``), the gradients averaged."""
    import jax

    from seqnlp.compat import trax

    loss = trax.layers.WeightedCategoryCrossEntropy()
    model.init(trax.shapes.signature(inputs))
    weights, state = model.weights, model.state

    def batch_loss(weights, inputs, targets):
        log_probs, _ = model.pure_fn(inputs, weights, state, jax.random.PRNGKey(0))
        return loss.pure_fn((log_probs, targets, np.ones(targets.shape, np.float32)), (), (), None)[0]

    if n_devices == 1:
        gradients = jax.jit(jax.grad(lambda weights: batch_loss(weights, inputs, targets)))
        return lambda: jax.block_until_ready(gradients(weights))
    gradients = jax.pmap(lambda *batch: jax.lax.pmean(jax.grad(batch_loss)(*batch), "devices"), axis_name="devices")
    replicated = jax.tree.map(lambda array: np.broadcast_to(np.asarray(array), (n_devices, *np.shape(array))), weights)
    shards = jax.tree.map(lambda array: array.reshape(n_devices, -1, *array.shape[1:]), (inputs, targets))
    return lambda: jax.block_until_ready(gradients(replicated, *shards))


def trax_steps(model, ids, features, width, vocab, n_devices):
    from seqnlp import layers
    from seqnlp.compat import trax
    from seqnlp.tasks import shakespeare

    tl = trax.layers
    if model == "gru-lm":
        steps = {f"{name} GRU": trax_step(shakespeare.GRULM(vocab, width, n_layers=2, gru=gru), ids, ids)
                 for name, gru in (("trax", tl.GRU), ("seqnlp", layers.GRU))}
        if n_devices > 1:
            steps[f"seqnlp GRU, {n_devices} devices"] = trax_step(
                shakespeare.GRULM(vocab, width, n_layers=2, gru=layers.GRU), ids, ids, n_devices)
        return steps
    tagger = tl.Serial(layers.BidirectionalLSTM(width), tl.Dense(N_TAGS), tl.LogSoftmax())
    return {"trax LSTM": trax_step(tagger, (features, ids), ids % N_TAGS)}


def torch_step(model, ids, features, width, vocab):
    import torch

    if model == "gru-lm":
        embedding, recurrent = torch.nn.Embedding(vocab, width), torch.nn.GRU(width, width, 2, batch_first=True)
        output = torch.nn.Linear(width, vocab)
        inputs = torch.nn.functional.pad(torch.from_numpy(ids.astype(np.int64)), (1, 0))[:, :-1]
        targets = torch.from_numpy(ids.astype(np.int64))
        parameters = [*embedding.parameters(), *recurrent.parameters(), *output.parameters()]

        def log_probs():
            states, _ = recurrent(embedding(inputs))
            return torch.log_softmax(output(states), dim=-1)
    else:
        recurrent = torch.nn.LSTM(width, width, batch_first=True, bidirectional=True)
        output = torch.nn.Linear(2 * width, N_TAGS)
        targets = torch.from_numpy((ids % N_TAGS).astype(np.int64))
        parameters = [*recurrent.parameters(), *output.parameters()]

        def log_probs():
            states, _ = recurrent(torch.from_numpy(features))
            return torch.log_softmax(output(states), dim=-1)

    mask = torch.ones(targets.shape)

    def step():
        for parameter in parameters:
            parameter.grad = None
        picked = log_probs().gather(-1, targets[..., None])[..., 0]
        (-(picked * mask).sum() / mask.sum()).backward()

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(DEFAULTS), default="gru-lm")
    parser.add_argument("--batch", type=int, help="lines or sentences per step")
    parser.add_argument("--length", type=int, help="characters or words per line")
    parser.add_argument("--width", type=int, help="recurrent units")
    parser.add_argument("--runs", type=int, default=10, help="timed steps per model (the median is shown)")
    parser.add_argument("--threads", type=int, default=2, help="threads for PyTorch (XLA uses every core)")
    parser.add_argument("--ceiling-size", type=int, default=4096,
                        help="side of the NumPy product that measures the ceiling (smaller measures a lower one)")
    parser.add_argument("--devices", type=int, default=1,
                        help="gru-lm: also time the seqnlp GRU step split over this many host devices")
    args = parser.parse_args()
    if args.devices > 1:  # read once, when jax starts: set before anything imports it
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={args.devices}"
    batch, length, width = (given or default for given, default in
                            zip((args.batch, args.length, args.width), DEFAULTS[args.model]))

    from seqnlp.tasks.shakespeare import VOCAB_SIZE

    ids = np.random.default_rng(0).integers(2, 127, (batch, length)).astype(np.int32)
    features = np.random.default_rng(1).standard_normal((batch, length, width), dtype=np.float32)  # lstm-tagger's input
    steps = trax_steps(args.model, ids, features, width, VOCAB_SIZE, args.devices)
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed (see --help): no PyTorch row")
    else:
        torch.set_num_threads(args.threads)
        steps[f"PyTorch {torch.__version__}"] = torch_step(args.model, ids, features, width, VOCAB_SIZE)

    flops = step_flops(args.model, batch, length, width, VOCAB_SIZE)
    ceiling = matmul_ceiling(args.ceiling_size)
    seconds = {name: median_seconds(step, args.runs) for name, step in steps.items()}
    loop_speed = loop_product_speed(batch, width, length) if args.model == "gru-lm" else None
    ceiling = max(ceiling, matmul_ceiling(args.ceiling_size))
    print(f"{args.model}, width {width}, {batch} x {length}: {flops / 1e9:.2f} GFLOP per step; matrix-multiply "
          f"ceiling {ceiling / 1e9:.0f} GFLOP/s = {flops / ceiling:.4f} s per step")
    if loop_speed:
        print(f"the recurrent product alone ({batch} x {width} by {width} x {3 * width}, {length} steps of a "
              f"lax.scan): {loop_speed / 1e9:.0f} GFLOP/s = {loop_speed / ceiling:.0%} of the ceiling")
    torch_seconds = next((value for name, value in seconds.items() if name.startswith("PyTorch")), None)
    for name, value in seconds.items():
        versus_torch = f", {torch_seconds / value:.2f}x PyTorch's speed" if torch_seconds else ""
        print(f"{name:>20}: {value:.4f} s per step, {flops / value / 1e9:4.0f} GFLOP/s = "
              f"{flops / value / ceiling:4.0%} of the ceiling{versus_torch}")


if __name__ == "__main__":
    main()
