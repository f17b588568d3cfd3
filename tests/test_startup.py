"""Stages and commands import what they use when they use it (seqnlp.lazy)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from seqnlp import tasks

HEAVY = ("tensorflow", "trax", "jax", "sklearn", "pandas", "seqeval")


def modules_after(code):
    """The heavy modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("task", tasks.modules())
def test_loading_a_task_and_the_data_stages_imports_no_model_library(task):
    assert modules_after(f"from seqnlp import cli\nfrom seqnlp.stages import data\nfrom seqnlp.tasks import {task}") == []


@pytest.mark.slow
def test_the_shakespeare_data_stages_run_without_trax(tmp_path, mirror):
    code = (f"from pathlib import Path\nfrom seqnlp.tasks import shakespeare as task\n"
            f"raw, filtered = Path({str(tmp_path / 'raw')!r}), Path({str(tmp_path / 'filtered')!r})\n"
            f"raw.mkdir(); filtered.mkdir()\n"
            f"task.download({{'local': None}}, raw)\n"
            f"task.filter({{'max_length': 32, 'lowercase': True, 'split': {{'valid': 0.05, 'test': 0.05}}, 'seed': 0}},"
            f" raw, filtered)")
    assert modules_after(code) == []
    assert (tmp_path / "filtered").iterdir()


@pytest.mark.slow
def test_a_lazy_trax_module_applies_the_compat_fixes_first():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom seqnlp.lazy import trax_module\ntl = trax_module('trax.layers')\n"
                               "assert 'trax' not in sys.modules\nprint(tl.LSTM.__name__, 'seqnlp.compat' in sys.modules)"],
        cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.split()[-2:] == ["LSTM", "True"]


def test_a_copy_of_the_project_runs_its_own_code(tmp_path, mirror):
    """`seqnlp` from the venv's editable install, run inside a copy (as `seqnlp slice` makes), runs the copy's
    src/: an edit there changes the copy's output."""
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("params.yaml", "dvc.yaml"):
        (copy / name).write_text((REPO / name).read_text())
    subprocess.run(["cp", "-r", str(REPO / "workflow"), str(REPO / "src"), str(copy)], check=True)
    data_stage = copy / "src" / "seqnlp" / "stages" / "data.py"
    data_stage.write_text(data_stage.read_text().replace(
        "record = stage_function(params[stage], *inputs, out)",
        "record = {**stage_function(params[stage], *inputs, out), 'edited_in_the_copy': True}"))
    seqnlp = [str(Path(sys.executable).with_name("seqnlp")), "download", "shakespeare"]
    subprocess.run(seqnlp, cwd=copy, check=True, capture_output=True)
    assert json.loads((copy / "data" / "shakespeare" / "raw" / "source.json").read_text())["edited_in_the_copy"]
    assert "edited_in_the_copy" not in (REPO / "src" / "seqnlp" / "stages" / "data.py").read_text()
