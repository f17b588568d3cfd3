"""The real pipeline on a small slice of the mirror data (.test/config/params.yaml), run by `dvc repro`
(tests/end_to_end.py makes the run once per session): its metrics, plots and streams, and every command and
package of every task, `seqnlp serve` and its page in a real browser. The same run goes through SLURM in
test_cluster_end_to_end.py, through clones in test_clones_end_to_end.py, and through the regeneration check in
test_regenerate_end_to_end.py."""

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from end_to_end import NER_TASKS, TASKS, environment, run

pytestmark = pytest.mark.slow


def test_dvc_repro_leaves_a_clean_status_and_tracked_metrics(slice_run):
    assert "up to date" in run(["dvc", "status"], slice_run)
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], slice_run))
    shown = next(iter(metrics.values()))["data"]
    topics = shown["metrics/topics.json"]["data"]
    assert topics["test_examples"] == 300 and 0.0 <= topics["accuracy"] <= 1.0
    assert topics["data"] == {**topics["data"], "source": "mirror", "train_is_subset": True, "train_rows": 760}
    lm = shown["metrics/shakespeare.json"]["data"]
    assert 0 < lm["log_perplexity"] < 5.6  # ln(256) would be a model that learned nothing
    assert lm["folio_edition"]["lines"] == 200
    assert (slice_run / "samples" / "shakespeare.txt").read_text().count("## temperature") == 9
    assert (slice_run / "plots/topics/train/plots/metrics/eval/Accuracy.tsv").read_text().startswith("step\tAccuracy")
    for task, corpus in zip(NER_TASKS, ("gmb", "conll2003")):
        ner = shown[f"metrics/{task}.json"]["data"]
        assert 0.5 < ner["token_accuracy"] <= 1 and 0 <= ner["f1"] <= 1 and ner["valid"]["sentences"] == 60
        assert ner["data"] == {**ner["data"], "corpus": corpus, "source": "mirror", "is_subset": True,
                               "train_sentences": 300}
        assert json.loads((slice_run / f"plots/{task}/eval/entity_confusion.json").read_text())
    pairs = shown["metrics/questions.json"]["data"]
    assert pairs["test_pairs"] == 200 and pairs["valid"]["pairs"] == 100
    assert 0 <= pairs["accuracy"] <= 1 and 0 <= pairs["roc_auc"] <= 1 and -1 <= pairs["threshold"] <= 1
    # the mirror's 83 + 72 lines of broken UTF-8 are counted though only a sample of the pairs is used
    assert pairs["data"] == {**pairs["data"], "source": "mirror", "train_is_subset": True, "train_pairs": 400,
                             "broken_utf8_lines": 155}
    histogram = json.loads((slice_run / "plots/questions/eval/similarity_histogram.json").read_text())
    assert sum(row["duplicates"] + row["non_duplicates"] for row in histogram) == 200
    titles = [next(iter(plot)) for plot in yaml.safe_load((slice_run / "dvc.yaml").read_text())["plots"]]
    assert len(list((slice_run / "plots-rendered").glob("*.svg"))) == len(titles)
    index = json.loads((slice_run / "data/questions/index/index.json").read_text())
    assert index["questions"] == len(json.loads((slice_run / "data/questions/index/questions.json").read_text()))


@pytest.mark.parametrize("task", TASKS)
def test_every_tasks_batch_streams_continue_exactly_where_a_resumed_run_skips_to(slice_run, task, monkeypatch):
    """The task's half of exact resume (trax restores the weights, slots and random key alike for every task):
    streams rebuilt from the seed and skipped to a checkpoint's positions give the batches an uninterrupted
    run goes on with."""
    import numpy as np

    from seqnlp import layout, tasks
    from seqnlp.stages.train import data_streams

    monkeypatch.chdir(slice_run)
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


def test_a_second_repro_has_nothing_to_do(slice_run):
    assert "didn't change" in run(["dvc", "repro"], slice_run) or "up to date" in run(["dvc", "status"], slice_run)


def test_classify_prints_a_label_and_four_probabilities(slice_run):
    lines = run(["seqnlp", "classify", "Shares of the chip maker rose after strong quarterly earnings"],
                slice_run).splitlines()
    labels = ("World", "Sports", "Business", "Sci/Tech")
    assert lines[0] in labels
    probabilities = {line.split()[0]: float(line.split()[1]) for line in lines[1:]}
    assert set(probabilities) == set(labels)
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert max(probabilities, key=probabilities.get) == lines[0]


def test_generate_is_repeatable_for_a_seed(slice_run):
    command = ["seqnlp", "generate", "--prefix", "to be", "--n", "2", "--length", "30", "--seed", "3"]
    first = run(command, slice_run)
    assert first == run(command, slice_run)
    assert first.count("to be") >= 2 and "---" in first


def test_tag_prints_tokens_tags_and_entities(slice_run):
    tagged = json.loads(run(["seqnlp", "tag", "--model", "ner_conll", "--json",
                             "Mr. Smith flew from Paris to Berlin on Monday.", "The U.N. met in Geneva."], slice_run))
    assert [entry["tokens"] for entry in tagged] == [
        ["Mr.", "Smith", "flew", "from", "Paris", "to", "Berlin", "on", "Monday", "."],
        ["The", "U.N.", "met", "in", "Geneva", "."]]
    tags = {"O"} | {f"{prefix}-{kind}" for kind in ("LOC", "MISC", "ORG", "PER") for prefix in "BI"}
    for entry in tagged:
        assert len(entry["tags"]) == len(entry["tokens"]) and set(entry["tags"]) <= tags
        for previous, tag in zip(["O", *entry["tags"]], entry["tags"]):  # the CRF decodes valid IOB2 only
            assert not tag.startswith("I-") or previous[2:] == tag[2:]
    plain = run(["seqnlp", "tag", "-"], slice_run, stdin="Mr. Smith flew to Paris.\n\nShe stayed.\n")
    assert plain.splitlines()[0].startswith("Mr./") and "She/" in plain


def test_duplicates_and_similar_answer_from_the_trained_model_and_its_index(slice_run):
    threshold = json.loads((slice_run / "metrics/questions.json").read_text())["threshold"]
    [pair] = json.loads(run(["seqnlp", "duplicates", "--json", "How do I learn Python?",
                             "What is the best way to learn Python?"], slice_run))
    assert -1 <= pair["similarity"] <= 1 and pair["threshold"] == threshold
    assert pair["duplicate"] == (pair["similarity"] > threshold)
    many = run(["seqnlp", "duplicates"], slice_run, stdin="How do I learn Python?\tHow to learn Python?\n\n"
                                                        "Why is the sky blue?\tWhat is love?\n")
    assert many.count("threshold") == 2
    assert "empty" in run(["seqnlp", "duplicates", "How do I learn Python?", ""], slice_run, expect=1)
    assert "stdin:1: expected `question1 TAB question2`" in run(["seqnlp", "duplicates"], slice_run,
                                                                 stdin="one question only\n", expect=1)
    [unknown] = json.loads(run(["seqnlp", "duplicates", "--json", "Qwzx vbnm?", "How do I learn Python?"], slice_run))
    assert unknown["known_words"][0] == 1  # only "?": compared by the n-grams of its unseen words
    assert unknown["duplicate"] == (unknown["similarity"] > threshold)
    seen = set(json.loads((slice_run / "data/questions/index/questions.json").read_text()))
    nearest = json.loads(run(["seqnlp", "similar", "--json", "--top", "3", "How can I lose weight fast?"], slice_run))
    assert len(nearest) == 3 and {entry["question"] for entry in nearest} <= seen
    assert [entry["similarity"] for entry in nearest] == sorted((e["similarity"] for e in nearest), reverse=True)
    [itself] = json.loads(run(["seqnlp", "similar", "--json", "--top", "1", sorted(seen)[0]], slice_run))
    assert itself["similarity"] == pytest.approx(1.0, abs=1e-4)


FRONT_DOORS = [["classify", "Stocks fell on Wall Street"], ["generate", "--length", "20"],
               ["tag", "Mr. Smith flew to Paris."], ["tag", "--model", "ner_conll", "Mr. Smith flew to Paris."],
               ["duplicates", "How do I learn Python?", "How to learn Python?"], ["similar", "Why is the sky blue?"]]


def test_the_commands_people_type_import_neither_trax_nor_tensorflow(slice_run):
    script = ("import json, sys\nfrom seqnlp.cli import main\n"
              "codes = [main(arguments) for arguments in json.loads(sys.argv[1])]\n"
              "print(json.dumps([codes, sorted({name.split('.')[0] for name in sys.modules}"
              " & {'trax', 'tensorflow', 'tensorflow_datasets'})]))")
    codes, imported = json.loads(run([sys.executable, "-c", script, json.dumps(FRONT_DOORS)],
                                     slice_run).splitlines()[-1])
    assert codes == [0] * len(FRONT_DOORS) and imported == []


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


def test_every_package_answers_outside_the_repository_as_the_commands_do_inside(slice_run, tmp_path):
    outside = outside_copy_of_the_packages(slice_run, tmp_path)
    found = json.loads(run([sys.executable, "-c", PACKAGE_CALLS.replace('load("', f'load("{outside}/')], outside)
                       .splitlines()[-1])
    assert found.pop("imported") == []
    [topic] = found["topics"]
    classified = run(["seqnlp", "classify", "Shares of the chip maker rose after strong quarterly earnings"],
                     slice_run).splitlines()
    assert topic["label"] == classified[0]
    assert {line.split()[0]: line.split()[1] for line in classified[1:]} == {
        label: f"{probability:.4f}" for label, probability in topic["probabilities"].items()}
    assert "\n---\n".join(found["shakespeare"]) + "\n" == run(
        ["seqnlp", "generate", "--prefix", "to be", "--n", "2", "--length", "30", "--seed", "3"], slice_run)
    for task in NER_TASKS:
        tagged = json.loads(run(["seqnlp", "tag", "--model", task, "--json",
                                 "Mr. Smith flew from Paris to Berlin on Monday."], slice_run))
        assert [{key: entry[key] for key in ("tokens", "tags", "entities")} for entry in tagged] == found[task]
        for entity in found[task][0]["entities"]:
            assert "Mr. Smith flew from Paris to Berlin on Monday."[entity["start"]:entity["end"]] == entity["text"]
    assert found["duplicates"] == json.loads(run(["seqnlp", "duplicates", "--json", "How do I learn Python?",
                                                  "What is the best way to learn Python?"], slice_run))
    assert found["similar"] == json.loads(run(["seqnlp", "similar", "--json", "--top", "3",
                                               "How can I lose weight fast?"], slice_run))
    info = json.loads((outside / "questions" / "package.json").read_text())
    metrics = json.loads((slice_run / "metrics/questions.json").read_text())
    assert info["metrics"]["roc_auc"]["value"] == metrics["roc_auc"] and info["data"] == metrics["data"]
    assert f"| roc_auc | {metrics['roc_auc']:.4g} |" in (outside / "questions" / "README.md").read_text()
    assert found["duplicates"][0]["threshold"] == metrics["threshold"]


def test_the_packages_benchmark_reports_every_task(slice_run):
    output = run([sys.executable, str(REPO / "benchmarks" / "packages.py"), "--sizes", "1", "4"], slice_run)
    for task in TASKS:
        assert re.search(rf"^{task} +\d+\.\dMB +\d+\.\d\ds +\d+\.\d\ds  1: [\d,]+/s \(\d+\.\d\d s\)", output,
                         re.MULTILINE), output


@pytest.mark.parametrize("task, call, message", [
    ("topics", lambda model: model.predict("one text"), "expected a list of texts, got str"),
    ("topics", lambda model: model.predict(["fine", 3]), "text 1 is a int, not a string"),
    ("topics", lambda model: model.predict(["  "]), "text 0 is empty"),
    ("ner_gmb", lambda model: model.tag(["Fine.", ""]), "text 1 is empty"),
    ("questions", lambda model: model.judge([("only one",)]), "pair 0 is not two questions"),
    ("questions", lambda model: model.judge([("a question?", "")]), "pair 0's question 1 is empty"),
    ("questions", lambda model: model.similar("Why?", top=0), "top must be a positive whole number, got 0"),
])
def test_the_predictors_refuse_bad_input_in_one_line(slice_run, task, call, message):
    from seqnlp import packages
    from seqnlp.errors import UserError

    with pytest.raises(UserError, match=re.escape(message)):
        call(packages.load(slice_run / "packages" / task))


def test_questions_added_to_the_index_are_found(slice_run):
    from seqnlp import packages

    model = packages.load(slice_run / "packages" / "questions")
    size = len(model.index.questions)
    assert model.add(["How do I grow tomatoes on a balcony?"]) == size + 1
    [nearest] = model.similar("How do I grow tomatoes on a balcony?", top=1)
    assert nearest == {"question": "How do I grow tomatoes on a balcony?", "similarity": pytest.approx(1.0, abs=1e-4)}


@pytest.fixture(scope="module")
def served_slice(slice_run):
    """`seqnlp serve` in the slice run's checkout, with its default: every task's package."""
    from test_serving import start

    process, line, url = start(cwd=slice_run, env=environment())
    try:
        assert "answers with topics, shakespeare, ner_gmb, ner_conll, questions" in line
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_seqnlp_serve_answers_every_command_of_every_task_as_the_python_api_does(slice_run, served_slice):
    import httpx

    from seqnlp import packages

    url = served_slice
    models = {task: packages.load(slice_run / "packages" / task) for task in TASKS}
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
    info = json.loads((slice_run / "packages/topics/package.json").read_text())
    metrics = json.loads((slice_run / "metrics/topics.json").read_text())
    assert re.fullmatch(r"[0-9a-f]{40}", cards["topics"]["commit"])
    assert cards["topics"]["commit"] == info["provenance"]["git"]["commit"]
    assert cards["topics"]["metrics"]["accuracy"] == metrics["accuracy"]


def test_the_page_shows_every_models_answer_in_a_real_browser(slice_run, served_slice, tmp_path):
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
    [topic] = packages.load(slice_run / "packages/topics").predict([inputs["classify"]["classify-text"]])
    assert shown["classify"]["text"].startswith(f"Topic: {topic['label']}")
    assert shown["classify"]["bars"] == ["World", "Sports", "Business", "Sci/Tech"]
    [tagged] = packages.load(slice_run / "packages/ner_gmb").tag([inputs["tag"]["tag-text"]])
    assert shown["tag"]["entities"] == [(entity["type"], entity["text"]) for entity in tagged["entities"]]
    [judged] = packages.load(slice_run / "packages/questions").judge(
        [[inputs["duplicates"]["duplicates-first"], inputs["duplicates"]["duplicates-second"]]])
    assert f"similarity {judged['similarity']:.4f}, threshold {judged['threshold']:.4f}" in shown["duplicates"]["text"]
    assert shown["generate"]["text"].startswith("my lord") and len(shown["similar"]["text"].splitlines()) == 5
    assert shown["classify"]["card"].startswith("topics: commit ")
    assert (tmp_path / "page.png").read_bytes().startswith(b"\x89PNG")
