"""Time of one Shakespeare training step (forward and backward pass) for several batch sizes and widths.

    python benchmarks/train_step.py [--length 17] [--batch-sizes 32,64,128] [--widths 512] [--runs 10]

Uses the model of params.yaml (with each width as d_model) and random weights; no data or checkpoint is
needed. It shows why smaller batches still win within the 15-minute budget (a step does not get
proportionally cheaper) and what a narrower GRU saves.
"""

import argparse
import copy
import time

import jax
import numpy as np

from seqnlp import tasks
from seqnlp.compat import trax


def step_seconds(task, params, batch_size, length, runs):
    model, loss = task.model(params, mode="train"), task.loss(params)
    ids = np.random.default_rng(0).integers(2, 127, (batch_size, length)).astype(np.int32)
    model.init(trax.shapes.signature(ids))
    weights, state, mask = model.weights, model.state, np.ones(ids.shape, np.float32)

    def batch_loss(weights, rng):
        log_probs, _ = model.pure_fn(ids, weights, state, rng)
        return loss.pure_fn((log_probs, ids, mask), (), (), None)[0]

    gradient_step = jax.jit(jax.value_and_grad(batch_loss))
    rng = jax.random.PRNGKey(0)
    jax.block_until_ready(gradient_step(weights, rng))
    started = time.perf_counter()
    for _ in range(runs):
        jax.block_until_ready(gradient_step(weights, rng))
    return (time.perf_counter() - started) / runs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=17, help="characters per line, EOS included")
    parser.add_argument("--batch-sizes", default="32,64,128", help="comma-separated lines per batch")
    parser.add_argument("--widths", help="comma-separated d_model values (default: the one in params.yaml)")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    task, params = tasks.load("shakespeare"), tasks.params("shakespeare")
    widths = args.widths.split(",") if args.widths else [params["model"]["d_model"]]
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    for width in map(int, widths):
        sized = copy.deepcopy(params)
        sized["model"]["d_model"] = width
        for batch_size in batch_sizes:
            seconds = step_seconds(task, sized, batch_size, args.length, args.runs)
            print(f"d_model {width}, {batch_size:4d} lines of {args.length}: {seconds:.3f} s per step, "
                  f"{seconds / batch_size * 1000:.2f} ms per line")


if __name__ == "__main__":
    main()
