"""docs/adding-a-task.md, done as it says: its example task (docs/examples/textcat) added to a copy of the
project, on local files only, then run through `dvc repro` and through Snakemake."""

import csv
import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import MIRROR, REPO
from seqnlp import contract, small_slice

pytestmark = pytest.mark.slow

EXAMPLE = REPO / "docs" / "examples" / "textcat"
LABELS = ["World", "Sports", "Business", "Sci/Tech"]


def run(command, cwd, expect=0):
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    environment.pop("SEQNLP_DATA_MIRROR", None)  # the task's data is the user's files alone
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True)
    assert result.returncode == expect, \
        f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout if expect == 0 else result.stderr


def write_titles(source, destination, rows):
    """AG News titles as `label TAB text` lines, ``rows`` of them spread over the file: a user's own file."""
    with gzip.open(source, "rt", newline="") as stream:
        records = [record for record in csv.reader(stream) if record[0] != "class_index"]
    with open(destination, "w", encoding="utf-8") as out:
        for label, title, _ in records[::len(records) // rows][:rows]:
            out.write(f"{LABELS[int(label) - 1]}\t{title}\n")


def add_the_example_task(root):
    """The steps of docs/adding-a-task.md: the module, the params section (and its `tasks:` entry), the
    schema section and the data files."""
    shutil.copy(EXAMPLE / "textcat.py", root / "src" / "seqnlp" / "tasks" / "textcat.py")
    params = yaml.safe_load((root / "params.yaml").read_text())
    example = yaml.safe_load((EXAMPLE / "params.yaml").read_text())
    params["tasks"].update(example["tasks"])
    params["textcat"] = {**example["textcat"], "filter": {**example["textcat"]["filter"], "labels": LABELS}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    schema_file = root / "workflow" / "schemas" / "params.schema.yaml"
    schema = yaml.safe_load(schema_file.read_text())
    schema["properties"].update(yaml.safe_load((EXAMPLE / "schema.yaml").read_text()))
    schema_file.write_text(yaml.safe_dump(schema, sort_keys=False))
    (root / "reviews").mkdir()
    write_titles(MIRROR / "ag_news" / "train_subset20k_balanced.csv.gz", root / "reviews" / "train.tsv", 4000)
    write_titles(MIRROR / "ag_news" / "test.csv.gz", root / "reviews" / "test.tsv", 800)


def test_the_example_task_provides_the_contract():
    spec = importlib.util.spec_from_file_location("seqnlp.tasks.textcat", EXAMPLE / "textcat.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert contract.problems(module) == []
    assert contract.stages(module) == [] and contract.commands(module) == []


@pytest.fixture(scope="module")
def added(tmp_path_factory):
    root = small_slice.make(tmp_path_factory.mktemp("fifth") / "copy", source=REPO)
    add_the_example_task(root)
    return root


def test_a_task_added_as_the_docs_say_runs_through_dvc_then_snakemake(added):
    out = run(["dvc", "repro", "evaluate@textcat"], added)
    assert "Running stage 'train@textcat'" in out
    metrics = json.loads((added / "metrics" / "textcat.json").read_text())
    assert metrics["data"]["source"] == "local" and metrics["data"]["pinned_source"] is False
    assert metrics["data"]["test_rows"] == 800
    assert metrics["accuracy"] > 0.4  # four balanced labels: chance is 0.25
    weights = (added / "models" / "textcat" / "model.pkl.gz").read_bytes()

    for generated in ("data/textcat", "models/textcat", "metrics/textcat.json", "plots/textcat"):
        path = added / generated
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    run(["snakemake", "--profile", "workflow/profiles/default", "metrics/textcat.json"], added)
    again = (added / "models" / "textcat" / "model.pkl.gz").read_bytes()
    assert again == weights  # from DVC's run-cache, through the Snakemake job: no second training
    assert json.loads((added / "metrics" / "textcat.json").read_text())["accuracy"] == metrics["accuracy"]


def test_the_tasks_command_a_package_without_a_predictor_and_a_missing_file_of_a_task_with_no_pinned_data(added):
    rows = {line.split()[0]: line.split() for line in run(["seqnlp", "tasks"], added).splitlines()[1:]}
    assert rows["textcat"][1] == "textcat" and rows["textcat"][-1] == "-"
    assert run(["seqnlp", "package", "textcat"], added, expect=1) == (
        "seqnlp package: error: task module textcat has no predictor class in src/seqnlp/predictors.py, so textcat "
        "has no model package; add one (docs/adding-a-task.md), or stop at `dvc repro export@textcat`\n")
    params = yaml.safe_load((added / "params.yaml").read_text())
    params["textcat"]["download"]["local"]["test"] = "reviews/missing.tsv"
    (added / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    error = run(["seqnlp", "download", "textcat"], added, expect=1)
    assert error == (f"seqnlp download: error: textcat.download.local.test: {added / 'reviews' / 'missing.tsv'} is "
                     f"not a file; in params.yaml set textcat.download.local.test to an existing file (a relative "
                     f"path is from {added})\n")
