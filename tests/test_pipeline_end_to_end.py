"""The real pipeline on a small slice of the mirror data (.test/config/params.yaml), through `dvc repro`, through
Snakemake on a real single-node SLURM, and through Snakemake locally in a clone that pulled the results."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import slurm_cluster
from conftest import MIRROR, REPO
from seqnlp import regenerate, small_slice

pytestmark = pytest.mark.slow

NER_TASKS = ("ner_gmb", "ner_conll")


GIT_IDENTITY = {f"GIT_{role}_{field}": value for role in ("AUTHOR", "COMMITTER")
                for field, value in (("NAME", "test"), ("EMAIL", "test@localhost"))}  # for GTO's annotated tags


def environment():
    return {**GIT_IDENTITY, **os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "SEQNLP_DATA_MIRROR": str(MIRROR)}


def run(command, cwd, stdin=None, expect=0):
    result = subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True, input=stdin)
    assert result.returncode == expect, \
        f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout if expect == 0 else result.stderr


def small_copy(destination):
    """The project's code and config (not its results) with the params of .test/config/params.yaml."""
    return small_slice.make(destination, source=REPO)


@pytest.fixture(scope="module")
def dvc_run(tmp_path_factory):
    root = small_copy(tmp_path_factory.mktemp("dvc"))
    run(["dvc", "repro"], root)
    return root


def mirror_without(tmp_path, entry):
    """The data mirror with one of its entries missing, so that the stages reading it fail."""
    partial = tmp_path / f"mirror-without-{entry}"
    partial.mkdir()
    for item in MIRROR.iterdir():
        if item.name != entry:
            (partial / item.name).symlink_to(item)
    return partial


SLURM = ["snakemake", "--profile", "workflow/profiles/slurm"]
COMPUTED_ON_SLURM = "topics"


def seed_run_cache(source, destination, computed):
    """Give ``destination`` (a copy of the same code and params) ``source``'s run: every object of its DVC
    cache, and the run-cache records of every stage but those whose name ``computed`` accepts. `dvc repro` there
    then restores those stages' outputs from the cache, as after `dvc pull --run-cache`, and runs the others."""
    commands = {lock["cmd"] for name, lock in yaml.safe_load((source / "dvc.lock").read_text())["stages"].items()
                if computed(name)}
    cache, seeded = source / ".dvc" / "cache", destination / ".dvc" / "cache"
    shutil.copytree(cache / "files", seeded / "files", copy_function=os.link)  # DVC's objects are read-only
    for record in (cache / "runs").rglob("*"):
        if record.is_file() and yaml.safe_load(record.read_text())["cmd"] not in commands:
            (seeded / record.relative_to(cache).parent).mkdir(parents=True, exist_ok=True)
            shutil.copy(record, seeded / record.relative_to(cache))


@pytest.fixture(scope="module")
def slurm_run(dvc_run, tmp_path_factory):
    """The small slice through the unchanged SLURM profile on a real single-node SLURM: first with the AG News
    files missing from the mirror (so the topics branch fails and the rest finishes), then, with the
    mirror whole, a rerun that continues from what finished. The cluster computes the topics branch and the
    plots; every other stage is restored from the DVC run's run-cache (the DVC run is what tests computing
    them), so the cluster run costs one branch, not five. Returns the run's folder, what both runs printed
    and the failed job's log."""
    missing = slurm_cluster.missing_programs()
    assert not missing, f"SLURM is not installed (missing {missing}): run `make cluster-packages` as root"
    root = small_copy(tmp_path_factory.mktemp("slurm"))
    seed_run_cache(dvc_run, root, lambda stage: stage.endswith(f"@{COMPUTED_ON_SLURM}") or stage == "render_plots")
    with slurm_cluster.single_node_cluster(tmp_path_factory.mktemp("cluster")):
        broken = {"SEQNLP_DATA_MIRROR": str(mirror_without(tmp_path_factory.mktemp("mirror"), "ag_news"))}
        failed = snakemake_log([*SLURM, "--keep-going"], root, env=broken, expect=1)
        failed_job_log = (root / "logs/download_topics.log").read_text()
        rerun = snakemake_log(SLURM, root)
    return root, failed, failed_job_log, rerun


def snakemake_log(command, cwd, env=None, expect=0):
    """What Snakemake printed (it logs to stderr); a timeout, not a hang, if a failed job goes unnoticed."""
    result = subprocess.run(command, cwd=cwd, env={**environment(), **(env or {})}, capture_output=True, text=True,
                            timeout=1800)
    assert result.returncode == expect, f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-5000:]}"
    return result.stdout + result.stderr


def jobs_run(log):
    """The rules of the jobs a Snakemake run started, from its job stats table."""
    table = log.split("Job stats:")[1].split("\ntotal")[0]
    return set(re.findall(r"^(\w+)\s+\d+$", table, re.MULTILINE))


def test_dvc_repro_leaves_a_clean_status_and_tracked_metrics(dvc_run):
    assert "up to date" in run(["dvc", "status"], dvc_run)
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], dvc_run))
    shown = next(iter(metrics.values()))["data"]
    topics = shown["metrics/topics.json"]["data"]
    assert topics["test_examples"] == 300 and 0.0 <= topics["accuracy"] <= 1.0
    assert topics["data"] == {**topics["data"], "source": "mirror", "train_is_subset": True, "train_rows": 760}
    lm = shown["metrics/shakespeare.json"]["data"]
    assert 0 < lm["log_perplexity"] < 5.6  # ln(256) would be a model that learned nothing
    assert lm["folio_edition"]["lines"] == 200
    assert (dvc_run / "samples" / "shakespeare.txt").read_text().count("## temperature") == 9
    assert (dvc_run / "plots/topics/train/plots/metrics/eval/Accuracy.tsv").read_text().startswith("step\tAccuracy")
    for task, corpus in zip(NER_TASKS, ("gmb", "conll2003")):
        ner = shown[f"metrics/{task}.json"]["data"]
        assert 0.5 < ner["token_accuracy"] <= 1 and 0 <= ner["f1"] <= 1 and ner["valid"]["sentences"] == 60
        assert ner["data"] == {**ner["data"], "corpus": corpus, "source": "mirror", "is_subset": True,
                               "train_sentences": 300}
        assert json.loads((dvc_run / f"plots/{task}/eval/entity_confusion.json").read_text())
    pairs = shown["metrics/questions.json"]["data"]
    assert pairs["test_pairs"] == 200 and pairs["valid"]["pairs"] == 100
    assert 0 <= pairs["accuracy"] <= 1 and 0 <= pairs["roc_auc"] <= 1 and -1 <= pairs["threshold"] <= 1
    # the mirror's 83 + 72 lines of broken UTF-8 are counted though only a sample of the pairs is used
    assert pairs["data"] == {**pairs["data"], "source": "mirror", "train_is_subset": True, "train_pairs": 400,
                             "broken_utf8_lines": 155}
    histogram = json.loads((dvc_run / "plots/questions/eval/similarity_histogram.json").read_text())
    assert sum(row["duplicates"] + row["non_duplicates"] for row in histogram) == 200
    titles = [next(iter(plot)) for plot in yaml.safe_load((dvc_run / "dvc.yaml").read_text())["plots"]]
    assert len(list((dvc_run / "plots-rendered").glob("*.svg"))) == len(titles)
    index = json.loads((dvc_run / "data/questions/index/index.json").read_text())
    assert index["questions"] == len(json.loads((dvc_run / "data/questions/index/questions.json").read_text()))


@pytest.mark.parametrize("task", ["topics", "shakespeare", *NER_TASKS, "questions"])
def test_every_tasks_batch_streams_continue_exactly_where_a_resumed_run_skips_to(dvc_run, task, monkeypatch):
    """The task's half of exact resume (trax restores the weights, slots and random key alike for every task):
    streams rebuilt from the seed and skipped to a checkpoint's positions give the batches an uninterrupted
    run goes on with."""
    import numpy as np

    from seqnlp import layout, tasks
    from seqnlp.stages.train import data_streams

    monkeypatch.chdir(dvc_run)
    module, params = tasks.load(task), tasks.params(task)
    uninterrupted = data_streams(module, params, layout.tokens(task))
    positions = {"train": 23, "valid": 5}
    for name, stream in uninterrupted.items():
        for _ in range(positions[name]):
            next(stream)
    resumed = data_streams(module, params, layout.tokens(task))
    for name, position in positions.items():
        resumed[name].skip_to(position)
        for _ in range(4):
            expected, found = next(uninterrupted[name]), next(resumed[name])
            assert len(expected) == len(found)
            for left, right in zip(expected, found):
                np.testing.assert_array_equal(np.asarray(left), np.asarray(right))


def test_a_second_repro_has_nothing_to_do(dvc_run):
    assert "didn't change" in run(["dvc", "repro"], dvc_run) or "up to date" in run(["dvc", "status"], dvc_run)


def git_commit(root, message):
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", message], root)


@pytest.fixture(scope="module")
def committed_run(dvc_run):
    """The small-slice run with its results committed and its artifacts and run-cache pushed to the default
    DVC remote (the committed .dvc/config's folder beside the repository)."""
    git_commit(dvc_run, "results of the small slice")
    run(["dvc", "push", "--run-cache"], dvc_run)
    return dvc_run


def clone_sharing_the_cache(source, destination):
    run(["git", "clone", "-q", str(source), str(destination)], destination.parent)
    run(["dvc", "cache", "dir", "--local", str(source / ".dvc" / "cache")], destination)
    return destination


def test_a_failed_cluster_job_names_its_log_and_the_rest_of_the_run_finishes(slurm_run):
    root, failed, failed_job_log, rerun = slurm_run
    assert "Error in rule download_topics" in failed and "logs/download_topics.log" in failed
    assert "ag_news" in failed_job_log and "Traceback" not in failed_job_log
    # each task's short stages ran as one cluster job per group of workflow/resources.yaml, training alone
    submitted = re.findall(r"submitted with SLURM jobid \d+ \(log: \S+/slurm_logs/(\w+)/", failed)
    assert "group_data_download_ner_gmb_filter_ner_gmb_tokenize_ner_gmb" in submitted and "rule_train_ner_gmb" in \
        submitted
    assert not [job for job in submitted if job.split("_")[1] in ("download", "filter", "tokenize", "evaluate",
                                                                 "export", "package")], submitted
    # the rerun continued from what finished: only the topics branch and what reads every branch ran
    assert jobs_run(rerun) == {f"{kind}_topics" for kind in ("download", "filter", "tokenize", "train", "evaluate",
                                                             "export", "package")} | {"render_plots", "all"}
    ran = {job_log.stem for job_log in (root / "logs").glob("*.log") if "Running stage" in job_log.read_text()}
    assert {rule for rule in jobs_run(rerun) if rule != "all"} <= ran
    # the other tasks' models were restored from the run-cache, not trained again (samples/, which git keeps
    # and DVC does not cache, cannot be restored: generate@shakespeare runs)
    assert not {rule for rule in ran if rule.split("_")[0] in ("train", "evaluate", "export", "package")
                and not rule.endswith(f"_{COMPUTED_ON_SLURM}")}, ran


def test_the_cluster_run_makes_what_dvc_repro_makes(dvc_run, slurm_run):
    root = slurm_run[0]
    assert "up to date" in run(["dvc", "status"], root)
    assert "Nothing to be done" in run([*SLURM, "-n"], root)
    by_dvc = yaml.safe_load((dvc_run / "dvc.lock").read_text())["stages"]
    on_slurm = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert by_dvc.keys() == on_slurm.keys()
    for stage in by_dvc:
        assert by_dvc[stage]["cmd"] == on_slurm[stage]["cmd"]
        if not stage.startswith("package@"):  # every output, trained models included, is byte-identical
            assert by_dvc[stage]["outs"] == on_slurm[stage]["outs"], stage
    for metrics in sorted((dvc_run / "metrics").glob("*.json")):
        tolerances = regenerate.load_tolerances(dvc_run / "tolerances.yaml")
        assert regenerate.compare(metrics.name, json.loads(metrics.read_text()),
                                  json.loads((root / "metrics" / metrics.name).read_text()), tolerances) == []


def test_a_run_warns_of_nothing_and_leaves_only_results_to_commit(slurm_run):
    root, _, _, rerun = slurm_run
    assert "warning" not in rerun.lower()
    changed = run(["git", "status", "--porcelain", "--untracked-files=all"], root).splitlines()
    assert changed and all(line[3:].split("/")[0] in ("dvc.lock", "metrics", "plots", "samples") for line in changed), \
        changed
    assert sorted((root / "logs").glob("*.log")) and (root / "logs/train_topics.log").stat().st_size > 0


def test_snakemake_rules_are_the_dvc_stages(slurm_run):
    root = slurm_run[0]
    rules = set(run(["snakemake", "--list-rules"], root).split())
    stages = {line.split()[0].replace("@", "_") for line in run(["dvc", "stage", "list"], root).splitlines()}
    assert rules == stages | {"all"}


def test_snakemake_report_holds_the_metrics_and_plots_of_the_run(slurm_run):
    root = slurm_run[0]
    run(["snakemake", "--report", "report.html"], root)
    report = (root / "report.html").read_text()
    for metrics in (root / "metrics").glob("*.json"):
        assert f"metrics/{metrics.name}" in report
    titles = [next(iter(plot)) for plot in yaml.safe_load((root / "dvc.yaml").read_text())["plots"]]
    images = sorted((root / "plots-rendered").glob("*.svg"))
    assert len(images) == len(titles)
    for image in images:
        assert image.name in report and image.read_text().startswith("<svg")


def test_classify_prints_a_label_and_four_probabilities(dvc_run):
    lines = run(["seqnlp", "classify", "Shares of the chip maker rose after strong quarterly earnings"],
                dvc_run).splitlines()
    labels = ("World", "Sports", "Business", "Sci/Tech")
    assert lines[0] in labels
    probabilities = {line.split()[0]: float(line.split()[1]) for line in lines[1:]}
    assert set(probabilities) == set(labels)
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert max(probabilities, key=probabilities.get) == lines[0]


def test_generate_is_repeatable_for_a_seed(dvc_run):
    command = ["seqnlp", "generate", "--prefix", "to be", "--n", "2", "--length", "30", "--seed", "3"]
    first = run(command, dvc_run)
    assert first == run(command, dvc_run)
    assert first.count("to be") >= 2 and "---" in first


def test_tag_prints_tokens_tags_and_entities(dvc_run):
    tagged = json.loads(run(["seqnlp", "tag", "--model", "ner_conll", "--json",
                             "Mr. Smith flew from Paris to Berlin on Monday.", "The U.N. met in Geneva."], dvc_run))
    assert [entry["tokens"] for entry in tagged] == [
        ["Mr.", "Smith", "flew", "from", "Paris", "to", "Berlin", "on", "Monday", "."],
        ["The", "U.N.", "met", "in", "Geneva", "."]]
    tags = {"O"} | {f"{prefix}-{kind}" for kind in ("LOC", "MISC", "ORG", "PER") for prefix in "BI"}
    for entry in tagged:
        assert len(entry["tags"]) == len(entry["tokens"]) and set(entry["tags"]) <= tags
        for previous, tag in zip(["O", *entry["tags"]], entry["tags"]):  # the CRF decodes valid IOB2 only
            assert not tag.startswith("I-") or previous[2:] == tag[2:]
    plain = run(["seqnlp", "tag", "-"], dvc_run, stdin="Mr. Smith flew to Paris.\n\nShe stayed.\n")
    assert plain.splitlines()[0].startswith("Mr./") and "She/" in plain


def test_duplicates_and_similar_answer_from_the_trained_model_and_its_index(dvc_run):
    threshold = json.loads((dvc_run / "metrics/questions.json").read_text())["threshold"]
    [pair] = json.loads(run(["seqnlp", "duplicates", "--json", "How do I learn Python?",
                             "What is the best way to learn Python?"], dvc_run))
    assert -1 <= pair["similarity"] <= 1 and pair["threshold"] == threshold
    assert pair["duplicate"] == (pair["similarity"] > threshold)
    many = run(["seqnlp", "duplicates"], dvc_run, stdin="How do I learn Python?\tHow to learn Python?\n\n"
                                                        "Why is the sky blue?\tWhat is love?\n")
    assert many.count("threshold") == 2
    assert "empty" in run(["seqnlp", "duplicates", "How do I learn Python?", ""], dvc_run, expect=1)
    assert "stdin:1: expected `question1 TAB question2`" in run(["seqnlp", "duplicates"], dvc_run,
                                                                 stdin="one question only\n", expect=1)
    [unknown] = json.loads(run(["seqnlp", "duplicates", "--json", "Qwzx vbnm?", "How do I learn Python?"], dvc_run))
    assert unknown["known_words"][0] == 1  # only "?": compared by the n-grams of its unseen words
    assert unknown["duplicate"] == (unknown["similarity"] > threshold)
    seen = set(json.loads((dvc_run / "data/questions/index/questions.json").read_text()))
    nearest = json.loads(run(["seqnlp", "similar", "--json", "--top", "3", "How can I lose weight fast?"], dvc_run))
    assert len(nearest) == 3 and {entry["question"] for entry in nearest} <= seen
    assert [entry["similarity"] for entry in nearest] == sorted((e["similarity"] for e in nearest), reverse=True)
    [itself] = json.loads(run(["seqnlp", "similar", "--json", "--top", "1", sorted(seen)[0]], dvc_run))
    assert itself["similarity"] == pytest.approx(1.0, abs=1e-4)


FRONT_DOORS = [["classify", "Stocks fell on Wall Street"], ["generate", "--length", "20"],
               ["tag", "Mr. Smith flew to Paris."], ["tag", "--model", "ner_conll", "Mr. Smith flew to Paris."],
               ["duplicates", "How do I learn Python?", "How to learn Python?"], ["similar", "Why is the sky blue?"]]


def test_the_commands_people_type_import_neither_trax_nor_tensorflow(dvc_run):
    script = ("import json, sys\nfrom seqnlp.cli import main\n"
              "codes = [main(arguments) for arguments in json.loads(sys.argv[1])]\n"
              "print(json.dumps([codes, sorted({name.split('.')[0] for name in sys.modules}"
              " & {'trax', 'tensorflow', 'tensorflow_datasets'})]))")
    codes, imported = json.loads(run([sys.executable, "-c", script, json.dumps(FRONT_DOORS)],
                                     dvc_run).splitlines()[-1])
    assert codes == [0] * len(FRONT_DOORS) and imported == []


SNAKEMAKE = ["snakemake", "-s", "workflow/Snakefile", "--profile", "workflow/profiles/default"]


@pytest.fixture(scope="module")
def pulled_clone(committed_run, tmp_path_factory):
    clone = tmp_path_factory.mktemp("pulled")  # beside the remote, as the committed .dvc/config expects
    run(["git", "clone", "-q", str(committed_run), "."], clone)
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


def test_regenerate_restores_from_the_run_cache_and_matches_the_committed_metrics(committed_run):
    output = run(["seqnlp", "regenerate"], committed_run)
    assert "5 metrics file(s) of HEAD regenerated within tolerances.yaml" in output
    assert "Running stage" not in output
    # the compared metrics are the run-cache's record of the evaluate stage, not the files in git
    for stage in ("train@shakespeare", "evaluate@topics", "evaluate@questions"):
        assert f"Stage '{stage}' is cached - skipping run" in output


def test_a_params_typo_costs_no_trained_model(committed_run, tmp_path):
    clone = clone_sharing_the_cache(committed_run, tmp_path / "typo")
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


def test_regenerate_from_scratch_gives_bitwise_identical_metrics(committed_run):
    output = run(["seqnlp", "regenerate", "--from-scratch", "--task", "topics"], committed_run)
    assert "1 metrics file(s) of HEAD regenerated within tolerances.yaml: metrics/topics.json" in output


def test_regenerate_names_a_committed_metric_that_the_code_does_not_produce(committed_run, tmp_path):
    clone = clone_sharing_the_cache(committed_run, tmp_path / "tampered")
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


def outside_copy_of_the_packages(root, tmp_path):
    """The run's packages, copied where no repository is anywhere above them."""
    outside = tmp_path / "elsewhere"
    shutil.copytree(root / "packages", outside)
    assert not any((parent / "params.yaml").exists() for parent in outside.parents)
    return outside


PACKAGE_CALLS = """
import json, sys
import seqnlp
found = {
    "topics": seqnlp.load("topics").predict(["Shares of the chip maker rose after strong quarterly earnings"]),
    "shakespeare": seqnlp.load("shakespeare").generate("to be", n=2, length=30, seed=3),
    "ner_gmb": seqnlp.load("ner_gmb").tag(["Mr. Smith flew from Paris to Berlin on Monday."]),
    "ner_conll": seqnlp.load("ner_conll").tag(["Mr. Smith flew from Paris to Berlin on Monday."]),
    "duplicates": seqnlp.load("questions").judge([("How do I learn Python?", "What is the best way to learn Python?")]),
    "similar": seqnlp.load("questions").similar("How can I lose weight fast?", top=3),
}
found["imported"] = sorted({name.split(".")[0] for name in sys.modules} & {"trax", "tensorflow", "tensorflow_datasets"})
print(json.dumps(found))
"""


def test_every_package_answers_outside_the_repository_as_the_commands_do_inside(dvc_run, tmp_path):
    outside = outside_copy_of_the_packages(dvc_run, tmp_path)
    found = json.loads(run([sys.executable, "-c", PACKAGE_CALLS.replace('load("', f'load("{outside}/')], outside)
                       .splitlines()[-1])
    assert found.pop("imported") == []
    [topic] = found["topics"]
    classified = run(["seqnlp", "classify", "Shares of the chip maker rose after strong quarterly earnings"],
                     dvc_run).splitlines()
    assert topic["label"] == classified[0]
    assert {line.split()[0]: line.split()[1] for line in classified[1:]} == {
        label: f"{probability:.4f}" for label, probability in topic["probabilities"].items()}
    assert "\n---\n".join(found["shakespeare"]) + "\n" == run(
        ["seqnlp", "generate", "--prefix", "to be", "--n", "2", "--length", "30", "--seed", "3"], dvc_run)
    for task in NER_TASKS:
        tagged = json.loads(run(["seqnlp", "tag", "--model", task, "--json",
                                 "Mr. Smith flew from Paris to Berlin on Monday."], dvc_run))
        assert [{key: entry[key] for key in ("tokens", "tags", "entities")} for entry in tagged] == found[task]
        for entity in found[task][0]["entities"]:
            assert "Mr. Smith flew from Paris to Berlin on Monday."[entity["start"]:entity["end"]] == entity["text"]
    assert found["duplicates"] == json.loads(run(["seqnlp", "duplicates", "--json", "How do I learn Python?",
                                                  "What is the best way to learn Python?"], dvc_run))
    assert found["similar"] == json.loads(run(["seqnlp", "similar", "--json", "--top", "3",
                                               "How can I lose weight fast?"], dvc_run))
    info = json.loads((outside / "questions" / "package.json").read_text())
    metrics = json.loads((dvc_run / "metrics/questions.json").read_text())
    assert info["metrics"]["roc_auc"]["value"] == metrics["roc_auc"] and info["data"] == metrics["data"]
    assert f"| roc_auc | {metrics['roc_auc']:.4g} |" in (outside / "questions" / "README.md").read_text()
    assert found["duplicates"][0]["threshold"] == metrics["threshold"]


def remote_folder(root):
    """The folder of the repository's default DVC remote (the committed .dvc/config names it relatively)."""
    _, url = run(["dvc", "remote", "list"], root).split()[:2]  # "(default)" follows, on a line of its own
    return (root / ".dvc" / url).resolve()                        # when the path is long


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


def test_the_packages_benchmark_reports_every_task(dvc_run):
    output = run([sys.executable, str(REPO / "benchmarks" / "packages.py"), "--sizes", "1", "4"], dvc_run)
    for task in ("topics", "shakespeare", "ner_gmb", "ner_conll", "questions"):
        assert re.search(rf"^{task} +\d+\.\dMB +\d+\.\d\ds +\d+\.\d\ds  1: [\d,]+/s \(\d+\.\d\d s\)", output,
                         re.MULTILINE), output


def test_snakemake_restores_a_deleted_model_from_the_run_cache_instead_of_training(committed_run, tmp_path):
    clone = clone_sharing_the_cache(committed_run, tmp_path / "deleted")
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


@pytest.mark.parametrize("task, call, message", [
    ("topics", lambda model: model.predict("one text"), "expected a list of texts, got str"),
    ("topics", lambda model: model.predict(["fine", 3]), "text 1 is a int, not a string"),
    ("topics", lambda model: model.predict(["  "]), "text 0 is empty"),
    ("ner_gmb", lambda model: model.tag(["Fine.", ""]), "text 1 is empty"),
    ("questions", lambda model: model.judge([("only one",)]), "pair 0 is not two questions"),
    ("questions", lambda model: model.judge([("a question?", "")]), "pair 0's question 1 is empty"),
    ("questions", lambda model: model.similar("Why?", top=0), "top must be a positive whole number, got 0"),
])
def test_the_predictors_refuse_bad_input_in_one_line(dvc_run, task, call, message):
    from seqnlp import packages
    from seqnlp.errors import UserError

    with pytest.raises(UserError, match=re.escape(message)):
        call(packages.load(dvc_run / "packages" / task))


def test_questions_added_to_the_index_are_found(dvc_run):
    from seqnlp import packages

    model = packages.load(dvc_run / "packages" / "questions")
    size = len(model.index.questions)
    assert model.add(["How do I grow tomatoes on a balcony?"]) == size + 1
    [nearest] = model.similar("How do I grow tomatoes on a balcony?", top=1)
    assert nearest == {"question": "How do I grow tomatoes on a balcony?", "similarity": pytest.approx(1.0, abs=1e-4)}


@pytest.fixture(scope="module")
def served_slice(dvc_run):
    """`seqnlp serve` in the slice run's checkout, with its default: every task's package."""
    from test_serving import start

    process, line, url = start(cwd=dvc_run, env=environment())
    try:
        assert "answers with topics, shakespeare, ner_gmb, ner_conll, questions" in line
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_seqnlp_serve_answers_every_command_of_every_task_as_the_python_api_does(dvc_run, served_slice):
    import httpx

    from seqnlp import packages

    url = served_slice
    models = {task: packages.load(dvc_run / "packages" / task) for task in ("topics", "shakespeare", *NER_TASKS,
                                                                             "questions")}
    texts = ["Mr. Smith flew from Paris to Berlin on Monday.", "Shares of the chip maker rose."]
    pairs = [["How do I learn Python?", "What is the best way to learn Python?"]]
    asked = [
        ("classify", {"texts": texts}, models["topics"].predict(texts)),
        ("generate", {"prefixes": ["to be"], "n": 2, "length": 30, "seed": 3},
         [models["shakespeare"].generate("to be", 2, 30, 1.0, 3)]),
        *[("tag", {"texts": texts, "model": task}, models[task].tag(texts)) for task in NER_TASKS],
        ("duplicates", {"pairs": pairs}, models["questions"].judge(pairs)),
        ("similar", {"questions": ["How can I lose weight fast?"], "top": 3},
         [models["questions"].similar("How can I lose weight fast?", 3)]),
    ]
    for command, body, expected in asked:
        answered = httpx.post(f"{url}/{command}", json=body, timeout=60)
        assert answered.status_code == 200 and answered.json()["results"] == expected, (command, answered.text)
    refused = httpx.post(f"{url}/tag", json={"texts": texts})
    assert refused.json() == {"error": "model: tag needs a model name, one of ner_gmb, ner_conll"}
    cards = {card["name"]: card for card in httpx.get(f"{url}/models").json()["models"]}
    info = json.loads((dvc_run / "packages/topics/package.json").read_text())
    metrics = json.loads((dvc_run / "metrics/topics.json").read_text())
    assert re.fullmatch(r"[0-9a-f]{40}", cards["topics"]["commit"])
    assert cards["topics"]["commit"] == info["provenance"]["git"]["commit"]
    assert cards["topics"]["metrics"]["accuracy"] == metrics["accuracy"]


def test_the_page_shows_every_models_answer_in_a_real_browser(dvc_run, served_slice, tmp_path):
    import page_driver
    from seqnlp import packages

    missing = [program for program in (page_driver.CHROMIUM, page_driver.CHROMEDRIVER) if not Path(program).exists()]
    assert not missing, f"Chromium is not installed (missing {missing}): run `make browser-packages` as root"
    with page_driver.browser() as chromium:
        shown = page_driver.try_every_form(chromium, served_slice)
        chromium.save_screenshot(str(tmp_path / "page.png"))
    assert shown["status"] == "Serving topics, shakespeare, ner_gmb, ner_conll, questions."
    assert not any(form["errors"] for name, form in shown.items() if name != "status"), shown
    inputs = {form: dict(fields) for form, fields in page_driver.INPUTS.items()}
    [topic] = packages.load(dvc_run / "packages/topics").predict([inputs["classify"]["classify-text"]])
    assert shown["classify"]["text"].startswith(f"Topic: {topic['label']}")
    assert shown["classify"]["bars"] == ["World", "Sports", "Business", "Sci/Tech"]
    [tagged] = packages.load(dvc_run / "packages/ner_gmb").tag([inputs["tag"]["tag-text"]])
    assert shown["tag"]["entities"] == [(entity["type"], entity["text"]) for entity in tagged["entities"]]
    [judged] = packages.load(dvc_run / "packages/questions").judge(
        [[inputs["duplicates"]["duplicates-first"], inputs["duplicates"]["duplicates-second"]]])
    assert f"similarity {judged['similarity']:.4f}, threshold {judged['threshold']:.4f}" in shown["duplicates"]["text"]
    assert shown["generate"]["text"].startswith("my lord") and len(shown["similar"]["text"].splitlines()) == 5
    assert shown["classify"]["card"].startswith("topics: commit ")
    assert (tmp_path / "page.png").read_bytes().startswith(b"\x89PNG")
