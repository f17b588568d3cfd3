"""Clones of the small slice run (tests/end_to_end.py): a fresh clone pulls every artifact, Snakemake reruns
exactly what a changed param makes stale, the report compares the two commits, GTO versions are fetched by
`dvc artifacts get`, and a deleted model is restored from the run-cache instead of being trained again."""

import json
import re
import shutil
import sys

import pytest
import yaml

from end_to_end import SNAKEMAKE, clone_sharing_the_cache, git_commit, jobs_run, remote_folder, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pulled_clone(slice_run):
    clone = slice_run.parent / "pulled"  # beside the remote, as the committed .dvc/config expects
    clone.mkdir()
    run(["git", "clone", "-q", str(slice_run), "."], clone)
    run(["dvc", "pull"], clone)
    return clone


def test_a_fresh_clone_pulls_every_artifact_and_neither_tool_finds_work(pulled_clone):
    assert "up to date" in run(["dvc", "status"], pulled_clone)
    assert run(["seqnlp", "classify", "Stocks fell on Wall Street"], pulled_clone).splitlines()[0] in \
        ("World", "Sports", "Business", "Sci/Tech")
    assert "to be" in run(["seqnlp", "generate", "--prefix", "to be", "--length", "20"], pulled_clone)
    assert "Nothing to be done" in run([*SNAKEMAKE, "-n"], pulled_clone)


@pytest.fixture(scope="module")
def retrained_clone(pulled_clone):
    """The pulled clone after a one-param change, rerun by Snakemake and committed; with what Snakemake
    planned and what DVC said before the run."""
    params = yaml.safe_load((pulled_clone / "params.yaml").read_text())
    params["topics"]["train"]["steps"] = 45
    (pulled_clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    planned = jobs_run(run([*SNAKEMAKE, "-n"], pulled_clone))
    dvc_status = run(["dvc", "status"], pulled_clone)
    run(SNAKEMAKE, pulled_clone)
    git_commit(pulled_clone, "train topics longer")
    return pulled_clone, planned, dvc_status


def test_snakemake_reruns_exactly_what_dvc_finds_changed(retrained_clone):
    clone, planned, dvc_status = retrained_clone
    # Snakemake follows DVC's content hashes, not the checkout's timestamps (it has no record of its own here)
    assert planned == {"train_topics", "evaluate_topics", "export_topics", "package_topics", "render_plots", "all"}
    assert "train@topics" in dvc_status and "shakespeare" not in dvc_status
    # each job is recorded in dvc.lock as it finishes: both tools agree the run is complete
    assert "up to date" in run(["dvc", "status"], clone)
    assert "Nothing to be done" in run([*SNAKEMAKE, "-n"], clone)


def test_report_compares_two_commits_that_differ_in_one_param(retrained_clone):
    clone = retrained_clone[0]
    before = json.loads(run(["git", "show", "HEAD~1:metrics/topics.json"], clone))
    after = json.loads((clone / "metrics/topics.json").read_text())
    run(["seqnlp", "report", "--base", "HEAD~1", "--output", "out/report.md"], clone)
    report = (clone / "out/report.md").read_text()
    topics = report.split("## topics")[1].split("## shakespeare")[0]
    assert f"| accuracy | {before['accuracy']:.4f} | {after['accuracy']:.4f} | {after['accuracy'] - before['accuracy']:+.4f} |" \
        in topics
    assert "TF-IDF 1–2-grams + logistic regression" in topics
    assert report.count("No metric changed.") == 4  # the other tasks
    params_section = report.split("## Params that changed")[1].split("## Plots")[0]
    [changed] = [line for line in params_section.splitlines() if line.startswith("| params.yaml")]
    assert re.search(r"topics.train.steps\s*\|\s*30\s*\|\s*45\s*\|", changed)
    images = re.findall(r"!\[[^]]+\]\(([^)]+)\)", report)
    assert len(images) == len(yaml.safe_load((clone / "dvc.yaml").read_text())["plots"])
    for image in images:
        assert (clone / "out" / image).read_bytes().startswith(b"\x89PNG\r\n")


def test_dvc_artifacts_get_fetches_each_gto_version_into_an_empty_folder(retrained_clone, tmp_path):
    clone = retrained_clone[0]
    run(["dvc", "push"], clone)  # the retrained topics package, beside the first run's
    run(["gto", "register", "topics", "HEAD~1", "--version", "v1.0.0"], clone)
    run(["gto", "register", "topics", "HEAD", "--version", "v1.1.0"], clone)
    assert "v1.1.0" in run(["gto", "show"], clone)
    empty = tmp_path / "fetched"
    empty.mkdir()
    steps = {}
    for version in ("v1.0.0", "v1.1.0"):
        run(["dvc", "artifacts", "get", str(clone), "topics", "--rev", version, "-o", version,
             "--remote-config", f"url={remote_folder(clone)}"], empty)
        [predicted] = json.loads(run([sys.executable, "-c", "import json, seqnlp\nprint(json.dumps(seqnlp.load("
                                      f"{str(empty / version)!r}).predict(['Stocks fell on Wall Street'])))"], empty))
        assert predicted["label"] in ("World", "Sports", "Business", "Sci/Tech")
        steps[version] = json.loads((empty / version / "package.json").read_text())["training"]["steps"]
    assert steps == {"v1.0.0": 30, "v1.1.0": 45}  # the two commits' topics.train.steps


def test_snakemake_restores_a_deleted_model_from_the_run_cache_instead_of_training(slice_run, tmp_path):
    clone = clone_sharing_the_cache(slice_run, tmp_path / "deleted")
    run(["dvc", "checkout"], clone)
    model = clone / "models" / "shakespeare"

    def files():  # Snakemake marks each folder it makes with an empty .snakemake_timestamp (DVC ignores it)
        return {path.name: path.read_bytes() for path in model.iterdir() if path.name != ".snakemake_timestamp"}

    before = files()
    shutil.rmtree(model)
    run(SNAKEMAKE, clone)
    log = (clone / "logs" / "train_shakespeare.log").read_text()
    assert "Stage 'train@shakespeare' is cached - skipping run, checking out outputs" in log
    assert "training" not in log  # no progress bar: nothing trained
    assert files() == before
    assert "up to date" in run(["dvc", "status"], clone)
