"""Time to sample 200 characters from the trained Shakespeare GRU (goal: <= 0.2 s).

    python benchmarks/generate.py [--length 200] [--runs 5]

Needs models/serving/shakespeare (run the pipeline first): it samples as `seqnlp generate` does, from the
exported model. The first call compiles the sampler; the figure that matters is the time of the calls after it.
"""

import argparse
import time

from seqnlp import layout, tasks
from seqnlp.trained import load_exported


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    task = tasks.load("shakespeare")
    generator = task.Generator(load_exported("shakespeare", tasks.params("shakespeare")),
                               task.training_alphabet(layout.tokens("shakespeare")))
    started = time.perf_counter()
    generator.sample("", args.length, 1.0, seed=0)
    print(f"first call (compiles the sampler): {time.perf_counter() - started:.3f} s")
    times = []
    for seed in range(1, args.runs + 1):
        started = time.perf_counter()
        generator.sample("", args.length, 1.0, seed=seed)
        times.append(time.perf_counter() - started)
    print(f"{args.length} characters: best {min(times):.3f} s, median {sorted(times)[len(times) // 2]:.3f} s "
          f"over {args.runs} runs (goal <= 0.2 s)")


if __name__ == "__main__":
    main()
