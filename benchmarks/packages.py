"""Model packages as a program uses them: size on disk, cold load, batched throughput, and the CLI per call.

    python benchmarks/packages.py [--sizes 1 100 10000]

Needs the pipeline's results (packages/*, and data/*/filtered for real inputs: the test splits, repeated
to the largest size). For each task it prints the package's size, the seconds from a new process to a
loaded model (`import seqnlp; seqnlp.load(...)`), inputs per second of one call with 1, 100 and 10,000
inputs (after a first call of the same size, so that compiling is not counted; the first call is shown
too), and the seconds of one `seqnlp COMMAND --package ...` in a new process. Generation is one sample
after another (its export is a one-character step), so it is measured at 1, 10 and 100 samples of 100
characters.
"""

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import seqnlp
from seqnlp.tasks import ner, questions

TEXT = "Mr. Smith flew from Paris to Berlin on Monday."


def _repeated(items, count):
    return list(itertools.islice(itertools.cycle(items), count))


def _jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def workloads():
    """task: (package folder, (inputs of n -> call), CLI arguments)."""
    news = [record["text"] for record in _jsonl("data/topics/filtered/test.jsonl")]
    sentences = {task: [" ".join(words) for words, _ in ner.read_filtered(f"data/{task}/filtered/test.jsonl")]
                 for task in ("ner_gmb", "ner_conll")}
    pairs = [(record["question1"], record["question2"])
             for record in questions.read_filtered("data/questions/filtered/test.jsonl")]
    return {
        "topics": (lambda model, n: model.predict(_repeated(news, n)), ["classify", news[0]]),
        "shakespeare": (lambda model, n: model.generate("to be", n=n, length=100), ["generate", "--length", "100"]),
        "ner_gmb": (lambda model, n: model.tag(_repeated(sentences["ner_gmb"], n)), ["tag", TEXT]),
        "ner_conll": (lambda model, n: model.tag(_repeated(sentences["ner_conll"], n)), ["tag", TEXT]),
        "questions": (lambda model, n: model.judge(_repeated(pairs, n)), ["duplicates", *pairs[0]]),
    }


def cold_load_seconds(folder):
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import seqnlp; seqnlp.load({str(folder)!r})"], check=True)
    return time.perf_counter() - started


def cli_seconds(arguments, folder):
    started = time.perf_counter()
    subprocess.run([shutil.which("seqnlp") or "seqnlp", arguments[0], "--package", str(folder), *arguments[1:]],
                   capture_output=True, check=True)
    return time.perf_counter() - started


def size_mb(folder):
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file()) / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100, 10000])
    args = parser.parse_args()
    print(f"{'task':<12} {'size':>8} {'cold load':>10} {'CLI call':>9}  inputs per second (first call) by batch size")
    for task, (call, cli_arguments) in workloads().items():
        folder = Path("packages") / task
        if not (folder / "package.json").exists():
            print(f"{task:<12} no package at {folder}: run `dvc repro` first", flush=True)
            continue
        process_seconds = cold_load_seconds(folder)
        model = seqnlp.load(folder)
        sizes = [1, 10, 100] if task == "shakespeare" else args.sizes
        rates = []
        for n in sizes:
            started = time.perf_counter()
            call(model, n)
            first = time.perf_counter() - started
            started = time.perf_counter()
            call(model, n)
            rates.append(f"{n}: {n / (time.perf_counter() - started):,.0f}/s ({first:.2f} s)")
        print(f"{task:<12} {size_mb(folder):>6.1f}MB {process_seconds:>9.2f}s {cli_seconds(cli_arguments, folder):>8.2f}s  "
              + "  ".join(rates), flush=True)


if __name__ == "__main__":
    main()
