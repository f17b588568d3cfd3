"""The regeneration check's comparison, the report's anchors, the README's results table, and the CI definition
users copy."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from seqnlp import regenerate, report, results
from seqnlp.errors import UserError


def test_flatten_names_every_leaf_by_its_dotted_path():
    assert regenerate.flatten({"a": {"b": 1, "c": [2, {"d": None}]}, "e": "x"}) == \
        {"a.b": 1, "a.c.0": 2, "a.c.1.d": None, "e": "x"}


def test_identical_metrics_match_and_any_move_without_a_tolerance_is_named():
    committed = {"accuracy": 0.9, "data": {"rows": 10, "source": "mirror"}}
    assert regenerate.compare("metrics/t.json", committed, json.loads(json.dumps(committed)), {}) == []
    [moved] = regenerate.compare("metrics/t.json", committed, {**committed, "accuracy": 0.901}, {})
    assert moved.metric == "accuracy" and "metrics/t.json: accuracy: committed 0.9" in str(moved)
    assert "regenerated 0.901 (moved +0.001, tolerance 0)" in str(moved)
    [renamed] = regenerate.compare("metrics/t.json", committed, {**committed, "data": {"rows": 10, "source": "tfds"}}, {})
    assert renamed.metric == "data.source" and "'mirror'" in str(renamed) and "'tfds'" in str(renamed)


def test_tolerances_apply_by_pattern_and_the_loosest_match_wins():
    tolerances = {"metrics/t.json": {"*": 0.001, "per_class.*": 0.01}}
    committed = {"accuracy": 0.9, "per_class": {"a": 0.5}}
    assert regenerate.compare("metrics/t.json", committed, {"accuracy": 0.9005, "per_class": {"a": 0.509}},
                              tolerances) == []
    [moved] = regenerate.compare("metrics/t.json", committed, {"accuracy": 0.902, "per_class": {"a": 0.5}}, tolerances)
    assert moved.metric == "accuracy" and moved.tolerance == 0.001
    assert regenerate.compare("metrics/other.json", {"x": 1.0}, {"x": 1.0005}, tolerances)  # other files: exact


def test_new_missing_and_nan_metrics_are_mismatches():
    mismatches = regenerate.compare("m.json", {"gone": 1, "nan": float("nan")}, {"new": 2, "nan": float("nan")},
                                    {"m.json": {"*": 1.0}})
    assert {m.metric: str(m) for m in mismatches} == {
        "gone": "m.json: gone is missing from the regenerated metrics",
        "new": "m.json: new is new",
        "nan": "m.json: nan: committed nan, regenerated nan (moved +nan, tolerance 1)"}


def test_a_bad_tolerance_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "tolerances.yaml"
    path.write_text("metrics/topics.json:\n  accuracy: -0.1\n")
    with pytest.raises(UserError, match="tolerances.yaml: metrics/topics.json: accuracy: .* >= 0, got -0.1"):
        regenerate.load_tolerances(path)


def test_the_committed_tolerances_name_real_metrics_files():
    tolerances = regenerate.load_tolerances(REPO / "tolerances.yaml")
    for file in tolerances:
        assert (REPO / file).is_file(), file


def test_regenerate_refuses_a_revision_that_is_not_a_commit_or_a_task_that_is_not_there(tmp_path):
    with pytest.raises(UserError, match="'no-such-rev' is not a commit"):
        regenerate.regenerate(REPO, "no-such-rev")
    with pytest.raises(UserError, match="no stage runs task\\(s\\) nosuch; dvc.yaml's tasks are ner_conll, ner_gmb"):
        regenerate.regenerate(REPO, "HEAD", tasks=["nosuch"], workdir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_regenerate_refuses_own_files_outside_the_repository_before_running_anything(tmp_path):
    from seqnlp import small_slice

    copy = small_slice.make(tmp_path / "copy", source=REPO)
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["topics"]["download"]["local"] = {"train": "../own/train.csv", "test": "/own/test.csv"}
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qam", "own data"],
                   cwd=copy, check=True)
    with pytest.raises(UserError, match=r"^params.yaml: topics.download.local.train is ../own/train.csv, outside the "
                                        r"repository, so a clean clone cannot find it; give an absolute path"):
        regenerate.regenerate(copy, workdir=tmp_path / "work")
    assert not (tmp_path / "work" / "repo").exists()


def test_every_anchored_metric_exists_in_the_committed_metrics():
    anchors = report.load_anchors(REPO / "anchors.yaml")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert set(anchors) == set(params["tasks"])
    for task, metrics in anchors.items():
        flat = regenerate.flatten(json.loads((REPO / "metrics" / f"{task}.json").read_text()))
        for metric in metrics:
            assert isinstance(flat.get(metric), float), f"{task}: {metric}"


def test_an_anchor_without_a_value_or_bound_is_refused(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text("topics:\n  accuracy:\n    - {name: peer}\n")
    with pytest.raises(UserError, match=r"anchors.yaml: topics.accuracy: each anchor needs a name and one of"):
        report.load_anchors(path)


def test_the_headline_table_shows_the_change_and_whether_each_goal_is_met():
    table = report.headline_table("main", {"f1": {"old": 0.80, "new": 0.85}, "acc": {"old": None, "new": 0.97}},
                                  {"f1": [{"name": "goal", "at_least": 0.84}, {"name": "course", "value": 0.762}],
                                   "acc": [{"name": "goal", "at_least": 0.975}]})
    rows = table.splitlines()
    assert rows[0] == "| metric | main | workspace | change | anchors |"
    assert rows[2] == "| f1 | 0.8000 | 0.8500 | +0.0500 | goal: ≥ 0.8400 met; course: 0.7620 |"
    assert rows[3] == "| acc | – | 0.9700 | – | goal: ≥ 0.9750 **not met** |"


def _lint(path):
    linter = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run([str(linter), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True)


def test_the_ci_workflows_pass_the_github_workflow_linter(tmp_path):
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert workflows
    for workflow in workflows:
        result = _lint(workflow)
        assert result.returncode == 0, result.stdout + result.stderr
    broken = yaml.safe_load(workflows[0].read_text())
    broken["jobs"]["test"]["runs-on"] = {"label": "ubuntu"}  # the linter must be able to say no
    shutil.copy(workflows[0], tmp_path / "broken.yml")
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    assert _lint(tmp_path / "broken.yml").returncode != 0


def test_the_regeneration_job_guards_against_what_breaks_it():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert {"push", "pull_request", "schedule", "workflow_dispatch"} <= set(triggers)
    job = workflow["jobs"]["regenerate"]
    assert "github-actions[bot]" in job["if"] and "'regenerate'" in job["if"]
    checkout = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    commands = "\n".join(step.get("run", "") for step in job["steps"])
    assert "make regenerate" in commands and "dvc push --run-cache" in commands and "[skip ci]" in commands
    assert "head.repo.full_name == github.repository" in job["env"]["CAN_PUSH"]  # forks push nothing
    test_job = workflow["jobs"]["test"]
    assert any(step.get("run") == "bash .ci/run" for step in test_job["steps"])


def test_the_readme_results_table_is_what_this_commits_metrics_make(monkeypatch):
    monkeypatch.chdir(REPO)
    assert results.update(check=True), "README.md's results table is stale: run `seqnlp results`"


def test_the_results_table_follows_a_changed_metric_and_says_whether_a_goal_is_met(tmp_path, monkeypatch):
    for name in ("README.md", "params.yaml", "anchors.yaml"):
        shutil.copy(REPO / name, tmp_path)
    shutil.copytree(REPO / "metrics", tmp_path / "metrics")
    monkeypatch.chdir(tmp_path)
    metrics = json.loads(Path("metrics/ner_conll.json").read_text())
    metrics["f1"] = 0.8123
    Path("metrics/ner_conll.json").write_text(json.dumps(metrics))
    assert not results.update(check=True)
    results.update()
    assert "| f1 | **0.8123** | goal (testb): ≥ 0.8400 **not met** |" in Path("README.md").read_text()
    assert results.update(check=True)


def test_a_task_without_anchors_shows_its_top_level_numbers_in_the_results_table_and_the_report():
    metrics = {"test_examples": 800, "accuracy": 0.8125, "macro_f1": 0.8011, "per_class": {"a": {"f1": 0.5}},
               "data": {"source": "local", "pinned_source": False, "train_rows": 3600}}
    rows = results.table(["textcat"], {}, lambda task: metrics).splitlines()[2:]
    assert rows == ["| `textcat` | local (not pinned), 3,600 training rows | accuracy | **0.8125** | – | – |",
                    "|  |  | macro_f1 | **0.8011** | – | – |"]
    assert report.headline_metrics(None, metrics) == {"accuracy": [], "macro_f1": []}
    anchored = {"accuracy": [{"name": "goal", "at_least": 0.9}]}
    assert report.headline_metrics(anchored, metrics) == anchored
