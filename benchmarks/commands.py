"""Cold start of the commands people type (goal: <= 3 s each), as a new user runs them: a fresh process each.

    python benchmarks/commands.py [--runs 3]

Needs the pipeline's results (models/serving/*, data/*/tokens, data/questions/index). Prints, per command,
the best and median wall time over the runs and the peak memory of the process.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import time

COMMANDS = {
    "classify": ["classify", "Stocks fell sharply after the central bank raised rates"],
    "generate": ["generate", "--length", "200"],
    "generate --prefix": ["generate", "--prefix", "ROMEO:", "--temperature", "0.5"],
    "tag (GMB)": ["tag", "Mr. Smith flew from Paris to Berlin on Monday."],
    "tag (CoNLL)": ["tag", "--model", "ner_conll", "EU rejects German call to boycott British lamb."],
    "duplicates": ["duplicates", "How do I learn Python?", "What is the best way to learn Python?"],
    "similar": ["similar", "How can I lose weight fast?"],
}


def timed(command):
    """(wall seconds, peak resident MB) of one run of ``command`` in a new process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read().decode()}")
    return seconds, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    seqnlp = shutil.which("seqnlp") or "seqnlp"
    print(f"{'command':<20} {'best':>7} {'median':>7} {'peak memory':>12}")
    for name, arguments in COMMANDS.items():
        runs = [timed([seqnlp, *arguments]) for _ in range(args.runs)]
        seconds = [wall for wall, _ in runs]
        print(f"{name:<20} {min(seconds):>6.2f}s {statistics.median(seconds):>6.2f}s "
              f"{max(memory for _, memory in runs):>9.0f} MB")


if __name__ == "__main__":
    main()
