"""Time `seqnlp similar` after the model is loaded: encode one question and search the index (goal: well under 50 ms).

    python benchmarks/similar.py [--runs 20] [--top 5]

Needs models/questions and data/questions/index (run the pipeline first). The first query compiles
the encoder for its length; the figures that matter are the queries after it, split into encoding and
searching, so the index's share (the part that grows with the number of questions) shows on its own.
"""

import argparse
import statistics
import time

from seqnlp import layout, tasks
from seqnlp.trained import load_exported

QUERIES = ["How can I lose weight fast?", "What is the best way to learn Python?", "Why is the sky blue?",
           "How do I get a job at Google?"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()
    task, params = tasks.load("questions"), tasks.params("questions")
    encoder = task.QuestionEncoder(params, load_exported("questions", params), layout.tokens("questions"))
    index = task.QuestionIndex(layout.index("questions"))
    for query in QUERIES:  # compile once per query length
        index.nearest(encoder([query])[0][0], args.top)
    encoding, searching = [], []
    for run in range(args.runs):
        started = time.perf_counter()
        vector = encoder([QUERIES[run % len(QUERIES)]])[0][0]
        encoded = time.perf_counter()
        index.nearest(vector, args.top)
        encoding.append(encoded - started)
        searching.append(time.perf_counter() - encoded)
    total = [a + b for a, b in zip(encoding, searching)]
    print(f"index: {len(index.questions)} questions x {index.vectors.shape[1]} dimensions")
    for name, times in (("encode", encoding), ("search", searching), ("query", total)):
        print(f"{name}: median {1000 * statistics.median(times):.2f} ms, best {1000 * min(times):.2f} ms "
              f"over {args.runs} runs")


if __name__ == "__main__":
    main()
