"""Model packages: a folder that works anywhere, checked against its manifest, data and never code.

The package is the real package stage's, of a tiny Shakespeare model trained, evaluated and exported here
by the real commands (the small-slice packages of every task are tested in test_pipeline_end_to_end.py).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from seqnlp import cli, layout, packages
from seqnlp.artifacts import sha256_of, write_json
from seqnlp.errors import UserError
from test_training_trust import TASK, make_repo

pytestmark = pytest.mark.slow  # every test but one reads the package of a model trained here

HEAVY = ("trax", "tensorflow", "tensorflow_datasets")


def packaged_repo(root):
    """A project at ``root`` whose tiny Shakespeare model was trained, evaluated, exported and packaged by the
    real commands."""
    make_repo(root)
    shutil.copy(Path(__file__).parents[1] / "anchors.yaml", root)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(root)
        for stage in ("train", "evaluate", "export", "package"):
            assert cli.main([stage, TASK]) == 0, stage
    return root


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return packaged_repo(tmp_path_factory.mktemp("packaged") / "repo")


@pytest.fixture
def package(repo, tmp_path):
    """A copy of the package in a folder with no repository anywhere above it."""
    copy = tmp_path / "elsewhere" / TASK
    shutil.copytree(repo / layout.package(TASK), copy)
    return copy


def run_python(code, cwd):
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_a_package_outside_the_repository_generates_what_the_repository_does(repo, package, monkeypatch, capsys):
    code = (f"import json, sys\nimport seqnlp\nmodel = seqnlp.load({str(package)!r})\n"
            "samples = model.generate('to be', n=2, length=20, temperature=0.7, seed=3)\n"
            f"print(json.dumps([samples, sorted(set(sys.modules) & set({HEAVY!r}))]))")
    samples, heavy = run_python(code, package.parent)
    assert heavy == []
    monkeypatch.chdir(repo)
    assert cli.main(["generate", "--prefix", "to be", "--n", "2", "--length", "20", "--temperature", "0.7",
                     "--seed", "3"]) == 0
    assert capsys.readouterr().out == "\n---\n".join(samples) + "\n"
    assert not any((parent / "params.yaml").exists() for parent in package.parents)


def test_the_commands_run_a_package_from_anywhere(repo, package):
    command = [str(Path(sys.executable).with_name("seqnlp")), "generate", "--package", str(package), "--prefix",
               "to be", "--length", "20", "--seed", "3"]
    outside = subprocess.run(command, cwd=package.parent, capture_output=True, text=True, check=True).stdout
    inside = subprocess.run(command[:2] + command[4:], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert outside == inside and outside.startswith("be")  # the tiny model never saw "t", "o" or a space


def test_the_card_and_record_hold_this_runs_metrics_and_provenance(repo, package):
    info = json.loads((package / packages.INFO).read_text())
    metrics = json.loads((repo / layout.metrics(TASK)).read_text())
    assert info["format_version"] == packages.FORMAT_VERSION and info["task"] == TASK
    assert info["metrics"]["log_perplexity"]["value"] == metrics["log_perplexity"]
    assert {"name": "goal, within 15 minutes of training", "at_most": 1.15} in \
        info["metrics"]["log_perplexity"]["anchors"]
    assert info["training"] == json.loads((repo / layout.model(TASK) / "training.json").read_text())
    assert info["data"] == metrics["data"]
    card = (package / packages.CARD).read_text()
    assert f"| log_perplexity | {metrics['log_perplexity']:.4g} |" in card
    assert "goal, within 15 minutes of training: ≤ 1.15" in card and "lower-cased" in card
    assert "seqnlp.load(" in card and f"{info['training']['steps']} steps, uninterrupted" in card


def test_a_flipped_byte_or_a_missing_file_is_named(package):
    weights = package / packages.MODEL / "weights.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"model/weights.npz does not match its sha256 in manifest.json"):
        packages.load(package)
    weights.unlink()
    with pytest.raises(UserError, match=r"does not match its manifest: missing model/weights.npz"):
        packages.load(package)


def test_a_file_the_manifest_does_not_list_is_never_read(package):
    (package / packages.MODEL / ".snakemake_timestamp").touch()  # Snakemake marks the folders it makes
    assert packages.load(package).generate("be", length=5)


def test_a_newer_or_foreign_format_is_refused(package):
    info = json.loads((package / packages.INFO).read_text())
    (package / packages.INFO).write_text(json.dumps({**info, "format_version": packages.FORMAT_VERSION + 1}))
    with pytest.raises(UserError, match=r"is a version 2 package; this seqnlp reads version 1 and older"):
        packages.load(package)
    (package / packages.INFO).write_text(json.dumps({**info, "format": "something-else"}))
    with pytest.raises(UserError, match=r"not a seqnlp-model-package"):
        packages.load(package)


class Planted:
    """Unpickling this creates the file it names: what a malicious package would run on load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def rewrite_manifest(package):
    files = sorted(path for path in package.rglob("*") if path.is_file() and path.name != packages.MANIFEST)
    write_json(package / packages.MANIFEST, {path.relative_to(package).as_posix(): sha256_of(path) for path in files})


def test_a_planted_pickle_is_refused_and_never_run(package, tmp_path):
    marker = tmp_path / "the-planted-pickle-ran"
    weights = package / packages.MODEL / "weights.npz"
    with open(weights, "wb") as stream:
        np.savez(stream, np.array([Planted(marker)], dtype=object))
    rewrite_manifest(package)  # as an attacker would: the manifest guards against accidents, not malice
    with pytest.raises(UserError, match=r"model: Object arrays cannot be loaded when allow_pickle=False"):
        packages.load(package)
    assert not marker.exists()


def test_by_task_name_in_the_checkout_and_refused_when_stale(repo, monkeypatch):
    monkeypatch.chdir(repo / "src")
    assert packages.load(TASK).package.directory == repo / layout.package(TASK)
    with pytest.raises(UserError, match=r"'lm' is neither a model package folder nor a task of"):
        packages.load("lm")
    monkeypatch.chdir(repo)
    right = (repo / "params.yaml").read_text()
    params = yaml.safe_load(right)
    params[TASK]["model"]["d_model"] = 32
    try:
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        with pytest.raises(UserError, match=r"models/shakespeare was trained with other model params than params.yaml's "
                                            r"shakespeare.model \(d_model\); run `dvc repro`"):
            packages.load(TASK)
    finally:
        (repo / "params.yaml").write_text(right)
    record = repo / layout.model(TASK) / "training.json"
    right = record.read_text()
    try:
        record.write_text(json.dumps({**json.loads(right), "steps": 7}))
        with pytest.raises(UserError, match=r"packages/shakespeare was made from another training run than "
                                            r"models/shakespeare's; run `dvc repro` \(or `seqnlp package shakespeare`\)"):
            packages.load(TASK)
    finally:
        record.write_text(right)


@pytest.mark.parametrize("call, message", [
    (lambda model: model.generate(7), "the prefix is a int, not a string"),
    (lambda model: model.generate("to be", n=0), "n must be a positive whole number, got 0"),
    (lambda model: model.generate("to be", temperature=-1), "temperature must be >= 0, got -1"),
])
def test_bad_input_is_one_line(package, call, message):
    with pytest.raises(UserError, match=message):
        call(packages.load(package))


def test_loading_a_missing_folder_or_a_non_package_says_so(tmp_path):
    with pytest.raises(UserError, match=r"is not a seqnlp model package \(no package.json\)"):
        packages.load(tmp_path)
    with pytest.raises(UserError, match=r"expected a model package folder or a task name, got 3"):
        packages.load(3)


def test_a_reader_that_stops_early_ends_the_command_quietly(package):
    command = [str(Path(sys.executable).with_name("seqnlp")), "generate", "--package", str(package), "--length", "20"]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the answer comes, as with `| head -0`
    try:
        finished = subprocess.run(command, stdout=write_end, stderr=subprocess.PIPE, cwd=package.parent, timeout=120)
    finally:
        os.close(write_end)
    assert finished.returncode == 141 and finished.stderr == b""


def test_log_perplexity_of_lines_is_what_evaluate_measures(repo, package):
    from seqnlp.artifacts import load_sequences

    test, _ = load_sequences(repo / layout.tokens(TASK) / "test.npz")
    lines = ["".join(chr(token) for token in sequence[:-1]) for sequence in test]  # without the EOS id
    scores = packages.load(package).log_perplexity(lines)
    per_character = sum(score * (len(line) + 1) for score, line in zip(scores, lines)) / sum(len(l) + 1 for l in lines)
    metrics = json.loads((repo / layout.metrics(TASK)).read_text())
    assert per_character == pytest.approx(metrics["log_perplexity"], rel=1e-5)
    assert np.mean(scores) == pytest.approx(metrics["per_line_log_perplexity"], rel=1e-5)
    with pytest.raises(UserError, match="line 1 is empty after normalisation"):
        packages.load(package).log_perplexity(["abc", "«»"])


def test_evaluate_replaces_its_metrics_and_plots_together_or_not_at_all(repo, monkeypatch):
    from seqnlp.stages import evaluate

    outputs = [repo / layout.metrics(TASK), *sorted((repo / layout.plots(TASK) / "eval").iterdir())]
    before = {path: path.read_bytes() for path in outputs}

    def full_disk(path, data):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.chdir(repo)
    monkeypatch.setattr(evaluate, "write_json", full_disk)
    assert cli.main(["evaluate", TASK]) == 1
    assert {path: path.read_bytes() for path in outputs} == before
    assert sorted(path.name for path in (repo / layout.plots(TASK)).iterdir()) == ["eval", "train"]
    assert sorted(path.name for path in (repo / "metrics").iterdir()) == [f"{TASK}.json"]


def test_a_command_finds_the_task_whose_model_answers_it_and_refuses_one_that_cannot(repo, package, monkeypatch,
                                                                                    capsys):
    monkeypatch.chdir(repo)
    assert cli.main(["generate", "--length", "20", "--seed", "3"]) == 0  # the first task that generates
    by_default = capsys.readouterr().out
    assert cli.main(["generate", "--model", TASK, "--length", "20", "--seed", "3"]) == 0
    assert capsys.readouterr().out == by_default and by_default.strip()
    assert cli.main(["classify", "--model", TASK, "some news"]) == 1
    assert capsys.readouterr().err == ("seqnlp classify: error: shakespeare is a TextGenerator, which cannot answer "
                                       "`seqnlp classify`; models that can: topics\n")
    assert cli.main(["tag", "--package", str(package), "John lives in Paris"]) == 1
    assert capsys.readouterr().err == (f"seqnlp tag: error: {package} is a TextGenerator, which cannot answer "
                                       "`seqnlp tag`\n")
