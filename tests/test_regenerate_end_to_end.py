"""The regeneration check on the small slice run (tests/end_to_end.py): `seqnlp regenerate` restores every
stage from the run-cache and matches the committed metrics, retrains a task from scratch to the same bits, and
names a committed metric that the code does not produce; a params typo costs no trained model."""

import json
import subprocess

import pytest
import yaml

from end_to_end import clone_sharing_the_cache, environment, git_commit, run

pytestmark = pytest.mark.slow


def test_regenerate_restores_from_the_run_cache_and_matches_the_committed_metrics(slice_run):
    output = run(["seqnlp", "regenerate"], slice_run)
    assert "5 metrics file(s) of HEAD regenerated within tolerances.yaml" in output
    assert "Running stage" not in output
    # the compared metrics are the run-cache's record of the evaluate stage, not the files in git
    for stage in ("train@shakespeare", "evaluate@topics", "evaluate@questions"):
        assert f"Stage '{stage}' is cached - skipping run" in output


def test_a_params_typo_costs_no_trained_model(slice_run, tmp_path):
    clone = clone_sharing_the_cache(slice_run, tmp_path / "typo")
    run(["dvc", "checkout"], clone)
    weights = (clone / "models/topics/model.weights.npy.gz").read_bytes()
    right = (clone / "params.yaml").read_text()
    params = yaml.safe_load(right)
    params["topics"]["train"]["learning_rat"] = params["topics"]["train"].pop("learning_rate")
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    failed = subprocess.run(["dvc", "repro", "train@topics"], cwd=clone, env=environment(), capture_output=True,
                            text=True)
    assert failed.returncode != 0 and "learning_rat" in failed.stdout + failed.stderr
    (clone / "params.yaml").write_text(right)
    assert "Stage 'train@topics' is cached - skipping run" in run(["dvc", "repro", "train@topics"], clone)
    assert (clone / "models/topics/model.weights.npy.gz").read_bytes() == weights


def test_regenerate_from_scratch_gives_bitwise_identical_metrics(slice_run):
    output = run(["seqnlp", "regenerate", "--from-scratch", "--task", "topics"], slice_run)
    assert "1 metrics file(s) of HEAD regenerated within tolerances.yaml: metrics/topics.json" in output


def test_regenerate_names_a_committed_metric_that_the_code_does_not_produce(slice_run, tmp_path):
    clone = clone_sharing_the_cache(slice_run, tmp_path / "tampered")
    metrics = json.loads((clone / "metrics/topics.json").read_text())
    metrics["accuracy"] += 0.01
    (clone / "metrics/topics.json").write_text(json.dumps(metrics))
    git_commit(clone, "a hand-edited metric")
    failed = subprocess.run(["seqnlp", "regenerate", "--task", "topics"], cwd=clone, capture_output=True, text=True,
                            env=environment())
    assert failed.returncode == 1
    assert f"metrics/topics.json: accuracy: committed {metrics['accuracy']!r}" in failed.stdout
    assert "(moved -0.01" in failed.stdout
    assert "1 metric(s) of HEAD did not regenerate within tolerances.yaml" in failed.stderr
