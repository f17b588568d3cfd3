"""The side-by-side recurrent benchmark runs and reports every row it promises (tiny shapes, one timed step)."""

import re
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("model, options, rows", [
    ("gru-lm", [], ["trax GRU", "seqnlp GRU"]),
    ("gru-lm", ["--devices", "2"], ["trax GRU", "seqnlp GRU", "seqnlp GRU, 2 devices"]),
    ("lstm-tagger", [], ["trax LSTM"]),
])
def test_recurrent_benchmark_reports_each_model_against_the_ceiling(model, options, rows):
    result = subprocess.run(
        [sys.executable, "benchmarks/recurrent.py", "--model", model, "--batch", "2", "--length", "3", "--width", "8",
         "--runs", "1", "--ceiling-size", "512", *options], cwd=REPO, capture_output=True, text=True, check=True)
    assert re.search(r"GFLOP per step; matrix-multiply ceiling \d+ GFLOP/s", result.stdout), result.stdout
    assert ("the recurrent product alone" in result.stdout) == (model == "gru-lm")
    for row in rows:
        assert re.search(rf"{row}: \d+\.\d+ s per step, +\d+ GFLOP/s = +\d+% of the ceiling", result.stdout), row
    try:
        import torch  # noqa: F401  (a benchmark-only dependency)
    except ImportError:
        assert "PyTorch is not installed" in result.stdout
    else:
        assert re.search(r"PyTorch [\d.]+\S*: .*x PyTorch's speed", result.stdout), result.stdout
