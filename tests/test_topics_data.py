import gzip

import numpy as np
import pytest

from seqnlp.errors import DataError, SourceUnavailable
from seqnlp.tasks import topics


def write(path, content):
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def test_reads_the_canonical_test_file_without_header(mirror):
    frame = topics.read_csv(mirror / "ag_news" / "test.csv.gz")
    assert len(frame) == 7600
    assert sorted(frame["label"].value_counts().tolist()) == [1900] * 4
    assert frame.loc[0, "title"] == "Fears for T N pension after talks"


def test_reads_a_file_with_header_and_maps_labels_to_0_3(tmp_path):
    path = write(tmp_path / "t.csv", 'class_index,title,description\n3,"A, b",c\n1,x,"multi\nline"\n')
    frame = topics.read_csv(path)
    assert frame["label"].tolist() == [2, 0]
    assert frame.loc[1, "description"] == "multi\nline"


@pytest.mark.parametrize("content, line, expected", [
    ('1,a,b\n2,c\n', 2, "expected 3 fields"),
    ('1,a,b\n5,c,d\n', 2, "'5' is not one of 1, 2, 3, 4"),
    ('1,a,b\nx,c,d\n', 2, "'x' is not one of"),
    ('1,a,b\n2,c,d\n3,"unclosed,e\n', 3, "malformed CSV"),
    (b'1,a,b\n2,c,d\n3,\xff\xfe,d\n', 3, "undecodable bytes"),
])
def test_bad_rows_name_the_file_and_line(tmp_path, content, line, expected):
    path = write(tmp_path / "bad.csv", content)
    with pytest.raises(DataError, match=expected) as error:
        topics.read_csv(path)
    assert str(error.value).startswith(f"{path}:{line}:")
    assert error.value.line == line


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.csv.gz"
    with gzip.open(path, "wt") as stream:
        stream.write("  \n")
    with pytest.raises(DataError, match="file is empty"):
        topics.read_csv(path)


@pytest.mark.parametrize("raw, clean", [
    ("A second\\team of rocketeers", "A second team of rocketeers"),
    ("the  #36;10 million Ansari X Prize", "the $10 million Ansari X Prize"),
    ("Bush #39;s plan", "Bush's plan"),
    ("&lt;b&gt;Bold&lt;/b&gt; and &amp; more", "Bold and & more"),
    ("  spaced\n out  ", "spaced out"),
])
def test_clean_text_undoes_the_csv_escapes(raw, clean):
    assert topics.clean_text(raw) == clean


def test_filter_drops_and_counts_empty_texts_and_holds_out_validation(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir(), out.mkdir()
    rows = "".join(f'{1 + i % 4},title {i},description number {i}\n' for i in range(40))
    with gzip.open(raw / "train.csv.gz", "wt") as stream:
        stream.write(rows + '2, , \\ \n')
    with gzip.open(raw / "test.csv.gz", "wt") as stream:
        stream.write(rows)
    params = {"fields": ["title", "description"], "lowercase": False, "max_rows": {"train": None, "test": 10},
              "validation_fraction": 0.25, "seed": 0}
    stats = topics.filter(params, raw, out)
    assert stats["train"]["rows_read"] == 41 and stats["train"]["dropped_empty_text"] == 1
    assert stats["valid"]["kept"] == 10 and stats["train"]["kept"] == 30
    assert stats["test"] == {**stats["test"], "rows_read": 40, "rows_sampled": 10, "kept": 10}
    train, valid = topics.read_filtered(out / "train.jsonl"), topics.read_filtered(out / "valid.jsonl")
    assert not set(train["text"]) & set(valid["text"])
    assert train["text"].iloc[0] == "title 0 description number 0"


def test_mirror_file_with_wrong_checksum_is_rejected(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "ag_news").mkdir(parents=True)
    for relative, _, _ in topics.MIRROR_FILES.values():
        with gzip.open(mirror / relative, "wt") as stream:
            stream.write("1,a,b\n")
    monkeypatch.setenv("SEQNLP_DATA_MIRROR", str(mirror))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError, match="sha256 is .* expected 3404520c"):
        topics.download({"tfds_name": "ag_news_subset"}, out)
    assert not (out / "train.csv.gz").exists()


def test_missing_mirror_directory_says_how_to_set_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQNLP_DATA_MIRROR", str(tmp_path / "nowhere"))
    with pytest.raises(SourceUnavailable, match=r"^cannot download from the mirror: SEQNLP_DATA_MIRROR=\S+nowhere is not a "
                                                r"directory; SEQNLP_DATA_MIRROR is \S+: it must be a folder laid out "
                                                r"like shared/data \(its PROVENANCE.md lists every file\)$"):
        topics.download({"tfds_name": "ag_news_subset"}, tmp_path)


def test_an_empty_mirror_names_the_missing_file_and_the_mirror_that_is_set(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQNLP_DATA_MIRROR", str(tmp_path))
    with pytest.raises(SourceUnavailable, match=rf"^cannot download \S+: {tmp_path}/\S+ is missing from the mirror; "
                                                rf"SEQNLP_DATA_MIRROR is {tmp_path}: it must be a folder laid out"):
        topics.download({"tfds_name": "ag_news_subset"}, tmp_path / "out")


def test_no_mirror_and_no_network_says_how_to_set_the_mirror(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to establish a new connection")

    monkeypatch.delenv("SEQNLP_DATA_MIRROR", raising=False)
    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(SourceUnavailable, match="(?s)ag_news_subset from TFDS.*SEQNLP_DATA_MIRROR"):
        topics.download({"tfds_name": "ag_news_subset"}, tmp_path)


def test_mirror_download_records_source_rows_and_subset(tmp_path, mirror):
    record = topics.download({"tfds_name": "ag_news_subset"}, tmp_path)
    assert record["source"] == "mirror"
    assert record["splits"]["train"] == {**record["splits"]["train"], "rows": 20000, "canonical_rows": 120000,
                                         "subset": True}
    assert record["splits"]["test"]["rows"] == 7600 and record["splits"]["test"]["subset"] is False


def test_subword_vocabulary_round_trips_through_trax_tokenize(tmp_path):
    from seqnlp.compat import trax

    texts = ["Stocks rallied on Wall Street today.", "The home team won the final match.",
             "New chips make phones faster."] * 20
    encoder = topics.build_vocabulary(texts, 300, tmp_path / topics.VOCAB_FILE)
    encoded = topics.encode(texts[:3], tmp_path)
    assert [list(ids) for ids in encoded] == [encoder.encode(text) for text in texts[:3]]
    for text, ids in zip(texts, encoded):
        assert trax.data.detokenize(ids, vocab_type="subword", vocab_file=topics.VOCAB_FILE,
                                    vocab_dir=str(tmp_path)) == text
    assert np.all(np.concatenate(encoded) > 0)
