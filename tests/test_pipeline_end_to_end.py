"""The real pipeline on a small slice of the mirror data, through `dvc repro` and through Snakemake."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import MIRROR, REPO
from seqnlp import variants

pytestmark = pytest.mark.slow

GENERATED = ("dvc.lock", "metrics", "plots", "samples", "data", "models", ".dvc/cache", ".dvc/tmp")
SMALL = {
    "topics.filter.max_rows": {"train": 800, "test": 300},
    "topics.tokenize.vocab_size": 600,
    "topics.model.vocab_size": 600,
    "topics.model.ngram_order": 2,
    "topics.model.ngram_buckets": 1000,
    "topics.train.steps": 30,
    "topics.train.eval_every": 15,
    "topics.train.checkpoint_every": 15,
    "topics.train.eval_batches": 2,
    "shakespeare.model.d_model": 32,
    "shakespeare.train.steps": 20,
    "shakespeare.train.eval_every": 10,
    "shakespeare.train.checkpoint_every": 10,
    "shakespeare.train.eval_batches": 2,
    "shakespeare.evaluate.folio_lines": 200,
    "shakespeare.generate.length": 40,
    **{f"{task}.{key}": value for task in ("ner_gmb", "ner_conll") for key, value in {
        "filter.max_sentences": {"train": 300, "valid": 60, "test": 60},
        "tokenize.vocab_size": 2000,
        "model.d_word": 16, "model.d_hidden": 16, "model.d_char": 8, "model.char_filters": 8,
        "train.steps": 60, "train.warmup_steps": 5, "train.learning_rate": 0.01, "train.eval_every": 30,
        "train.checkpoint_every": 30, "train.eval_batches": 2,
    }.items()},
    "questions.filter.max_pairs": {"train": 400, "valid": 100, "test": 200},
    "questions.tokenize.vocab_size": 1000,
    "questions.tokenize.subwords": {"n_min": 3, "n_max": 5, "per_word": 8, "buckets": 1000},
    "questions.model.d_model": 16,
    "questions.train.steps": 20,
    "questions.train.eval_every": 10,
    "questions.train.checkpoint_every": 10,
    "questions.train.eval_batches": 2,
}
NER_TASKS = ("ner_gmb", "ner_conll")


def run(command, cwd, stdin=None, expect=0):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "SEQNLP_DATA_MIRROR": str(MIRROR)}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, input=stdin)
    assert result.returncode == expect, \
        f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result.stdout if expect == 0 else result.stderr


def small_copy(destination):
    """A git repository holding this project's files (not its results) and params for a small slice."""
    tracked = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], REPO).splitlines()
    for name in tracked:
        if name.split("/")[0] in GENERATED or name == "dvc.lock" or not (REPO / name).is_file():
            continue
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, destination / name)
    params = yaml.safe_load((destination / "params.yaml").read_text())
    for dotted, value in SMALL.items():
        variants.set_param(params, dotted, value)
    (destination / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], destination)
    run(["git", "add", "-A"], destination)
    run(["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-qm", "small slice"], destination)
    return destination


@pytest.fixture(scope="module")
def dvc_run(tmp_path_factory):
    root = small_copy(tmp_path_factory.mktemp("dvc"))
    run(["dvc", "repro"], root)
    return root


@pytest.fixture(scope="module")
def snakemake_run(tmp_path_factory):
    root = small_copy(tmp_path_factory.mktemp("snakemake"))
    run(["snakemake", "-s", "workflow/Snakefile", "--cores", "2"], root)
    return root


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
    index = json.loads((dvc_run / "data/questions/index/index.json").read_text())
    assert index["questions"] == len(json.loads((dvc_run / "data/questions/index/questions.json").read_text()))


def test_a_second_repro_has_nothing_to_do(dvc_run):
    assert "didn't change" in run(["dvc", "repro"], dvc_run) or "up to date" in run(["dvc", "status"], dvc_run)


def test_snakemake_runs_the_same_stages_and_makes_the_same_artifacts(dvc_run, snakemake_run):
    assert "up to date" in run(["dvc", "status"], snakemake_run)
    dvc_lock = yaml.safe_load((dvc_run / "dvc.lock").read_text())["stages"]
    snakemake_lock = yaml.safe_load((snakemake_run / "dvc.lock").read_text())["stages"]
    assert dvc_lock.keys() == snakemake_lock.keys()
    for stage in dvc_lock:
        assert dvc_lock[stage]["cmd"] == snakemake_lock[stage]["cmd"]
        if stage.split("@")[0] in ("download", "filter", "tokenize"):
            assert dvc_lock[stage]["outs"] == snakemake_lock[stage]["outs"], stage
    for metrics in ("metrics/topics.json", "metrics/shakespeare.json", "metrics/questions.json",
                    *(f"metrics/{task}.json" for task in NER_TASKS)):
        by_dvc = json.loads((dvc_run / metrics).read_text())
        by_snakemake = json.loads((snakemake_run / metrics).read_text())
        assert by_dvc.keys() == by_snakemake.keys()
        assert by_dvc["data"] == by_snakemake["data"]


def test_snakemake_rules_are_the_dvc_stages(snakemake_run):
    rules = set(run(["snakemake", "-s", "workflow/Snakefile", "--list-rules"], snakemake_run).split())
    stages = {line.split()[0].replace("@", "_") for line in run(["dvc", "stage", "list"], snakemake_run).splitlines()}
    assert rules == stages | {"all"}


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
