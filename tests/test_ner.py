"""NER: the corpus readers, IOB1 -> IOB2, the tokenizer for raw text, the metrics, the model's shapes."""

import gzip
import json

import numpy as np
import pytest

from conftest import MIRROR
from seqnlp.errors import DataError
from seqnlp.tasks import ner

GMB_HEADER = b"Sentence #,Word,POS,Tag\r\n"


def gz(path, payload):
    path.write_bytes(gzip.compress(payload))
    return path


def test_gmb_reader_decodes_latin1_crlf_and_forward_fills_sentences(tmp_path):
    rows = ("Sentence: 1,Caf\xe9,NNP,B-geo\r\n,opens,VBZ,O\r\n"
            "Sentence: 2,Mr.,NNP,B-per\r\n,\"Smith, Jr\",NNP,I-per\r\n,.,.,O\r\n").encode("latin-1")
    sentences = ner.read_gmb(gz(tmp_path / "gmb.csv.gz", GMB_HEADER + rows))
    assert sentences == [(["Café", "opens"], ["B-geo", "O"]),
                         (["Mr.", "Smith, Jr", "."], ["B-per", "I-per", "O"])]


@pytest.mark.parametrize("rows, line, message", [
    (b",orphan,NN,O\r\n", 2, "the first row has no sentence number"),
    (b"Sentence: 1,word,NN\r\n", 2, "expected 4 fields"),
    (b"Sentence: 1,word,NN,B-xyz\r\n", 2, "unknown tag 'B-xyz'"),
    (b"Sentence: 1,word,NN,O\r\n,,NN,O\r\n", 3, "empty word"),
    (b"Sentence: 1,word,NN,\r\n", 2, "unknown tag ''"),
])
def test_gmb_reader_names_file_and_line(tmp_path, rows, line, message):
    path = gz(tmp_path / "gmb.csv.gz", GMB_HEADER + rows)
    with pytest.raises(DataError, match=f"{path}:{line}: {message}"):
        ner.read_gmb(path)


def test_gmb_reader_refuses_an_empty_or_headerless_or_broken_file(tmp_path):
    with pytest.raises(DataError, match="no sentences"):
        ner.read_gmb(gz(tmp_path / "empty.csv.gz", GMB_HEADER))
    with pytest.raises(DataError, match=":1: expected the header"):
        ner.read_gmb(gz(tmp_path / "noheader.csv.gz", b"a,b,c,d\r\n"))
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress(GMB_HEADER * 50)[:30])
    with pytest.raises(DataError, match="cannot read the file"):
        ner.read_gmb(broken)


@pytest.mark.parametrize("iob1, iob2", [
    (["I-PER", "I-PER", "O"], ["B-PER", "I-PER", "O"]),                 # an entity starts with I-
    (["I-LOC", "B-LOC", "I-LOC"], ["B-LOC", "B-LOC", "I-LOC"]),         # B- after a same-type entity
    (["O", "I-ORG", "I-MISC", "I-MISC"], ["O", "B-ORG", "B-MISC", "I-MISC"]),  # I- after O, type change
    (["B-PER"], ["B-PER"]),
    ([], []),
])
def test_iob1_to_iob2(iob1, iob2):
    assert ner.iob1_to_iob2(iob1) == iob2


def test_conll_reader_converts_and_drops_docstart(tmp_path):
    text = (b"-DOCSTART- -X- -X- O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\nGerman JJ I-NP I-MISC\n\n"
            b"Peter NNP I-NP I-PER\nBlackburn NNP I-NP I-PER\nSmith NNP I-NP B-PER\n\n\n")
    assert ner.read_conll(gz(tmp_path / "eng.gz", text)) == [
        (["EU", "rejects", "German"], ["B-ORG", "O", "B-MISC"]),
        (["Peter", "Blackburn", "Smith"], ["B-PER", "I-PER", "B-PER"]),
    ]
    with pytest.raises(DataError, match=r"eng2.gz:2: expected 4 columns"):
        ner.read_conll(gz(tmp_path / "eng2.gz", b"EU NNP I-NP I-ORG\nrejects O\n"))
    with pytest.raises(DataError, match=r"eng3.gz:1: unknown tag 'I-XYZ'"):
        ner.read_conll(gz(tmp_path / "eng3.gz", b"EU NNP I-NP I-XYZ\n"))
    with pytest.raises(DataError, match="no sentences"):
        ner.read_conll(gz(tmp_path / "eng4.gz", b"-DOCSTART- -X- -X- O\n\n"))


def test_conll_mirror_counts_match_the_shared_task_and_the_iob2_copy():
    counts = {}
    for name in ("eng.train", "eng.testa", "eng.testb"):
        sentences = ner.read_conll(MIRROR / "conll2003" / f"{name}.gz")
        counts[name] = (len(sentences), sum(len(words) for words, _ in sentences))
    assert counts == {"eng.train": (14041, 203621), "eng.testa": (3250, 51362), "eng.testb": (3453, 46435)}
    with gzip.open(MIRROR / "conll2003" / "iob2_copy" / "test.txt.gz", "rt") as stream:
        iob2_tags = [line.split()[-1] for line in stream if line.strip() and not line.startswith("-DOCSTART-")]
    assert [tag for _, tags in sentences for tag in tags] == iob2_tags


@pytest.mark.parametrize("text, tokens", [
    ("Mr. Smith flew from Paris to Berlin on Monday.",
     ["Mr.", "Smith", "flew", "from", "Paris", "to", "Berlin", "on", "Monday", "."]),
    ("The U.S. didn't pay $1,000.50 to Smith's co-worker O'Brien.",
     ["The", "U.S.", "did", "n't", "pay", "$", "1,000.50", "to", "Smith", "'s", "co-worker", "O'Brien", "."]),
    ("  ", []),
])
def test_split_words_separates_punctuation_and_clitics(text, tokens):
    assert ner.split_words(text) == tokens


def test_scores_on_a_hand_worked_example():
    gold = [["B-per", "I-per", "O", "B-geo"], ["B-org", "O"]]
    predicted = [["B-per", "I-per", "O", "B-org"], ["O", "O"]]
    scores = ner.score(gold, predicted)
    # 3 gold entities, 2 predicted, 1 exactly right: P = 1/2, R = 1/3; 4 of 6 tokens right
    assert scores["token_accuracy"] == pytest.approx(4 / 6)
    assert scores["precision"] == pytest.approx(0.5) and scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert scores["per_type"]["per"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert scores["per_type"]["geo"]["support"] == 1 and scores["per_type"]["geo"]["recall"] == 0.0
    assert sorted(map(json.dumps, ner.entity_confusion(gold, predicted))) == sorted(map(json.dumps, [
        {"actual": "per", "predicted": "per"}, {"actual": "geo", "predicted": "org"},
        {"actual": "org", "predicted": "O"}]))


def test_strict_scoring_does_not_credit_an_entity_that_starts_with_i():
    scores = ner.score([["B-per", "I-per"]], [["I-per", "I-per"]])
    assert scores["f1"] == 0.0 and scores["token_accuracy"] == 0.5


def test_tag_names_put_o_first_and_pair_b_with_i():
    assert ner.tag_names("conll2003") == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER",
                                          "I-PER"]
    assert len(ner.tag_names("gmb")) == 17


def test_forms_keep_characters_of_words_unseen_in_training():
    vocabulary = ner.Vocabulary.build([(["Paris", "paris", "1999"], ["O"] * 3)], size=10,
                                      tags=ner.tag_names("gmb"), char_width=4)
    forms = ner.Forms(vocabulary)
    ids = forms.ids(["Paris", "2001", "Zurich", "Paris"])
    word_ids, char_ids = forms.tables()
    assert ids[0] == ids[3] and len(set(ids)) == 3
    assert word_ids[ids[0]] == vocabulary.word_id("paris") != ner.UNK
    assert word_ids[ids[1]] == vocabulary.word_id("1999")  # digits are one class for the word embedding
    assert word_ids[ids[2]] == ner.UNK
    assert list(char_ids[ids[2]]) == [ord(c) for c in "Zuri"]


def params(crf=True, bidirectional=True, char_features=True):
    return {"download": {"corpus": "conll2003"}, "tokenize": {"vocab_size": 50},
            "model": {"d_word": 8, "d_hidden": 8, "bidirectional": bidirectional, "char_features": char_features,
                      "d_char": 4, "char_filters": 6, "char_kernel": 3, "dropout": 0.0, "crf": crf}}


def test_the_course_variant_is_the_seed_model():
    from trax import layers as tl

    course = params(crf=False, bidirectional=False, char_features=False)
    course["model"].update(d_word=50, d_hidden=50)
    assert str(ner.model(course)) == str(tl.Serial(tl.Embedding(50, 50), tl.LSTM(50), tl.Dense(9), tl.LogSoftmax()))


@pytest.mark.slow
@pytest.mark.parametrize("crf", [True, False])
def test_padding_does_not_change_a_sentence_tags(crf):
    from trax import shapes

    tagger = ner.model(params(crf=crf), mode="eval")
    words = np.array([[3, 4, 5, 0, 0]], np.int32)
    chars = np.random.default_rng(0).integers(1, 255, size=(1, 5, 6)).astype(np.int32)
    chars[0, 3:] = 0
    tagger.init(shapes.signature((words, chars)))
    short = np.asarray(tagger((words[:, :3], chars[:, :3])))
    long = np.asarray(tagger((words, chars)))
    np.testing.assert_allclose(long[:, :3], short, rtol=1e-5, atol=1e-5)


def test_a_local_corpus_file_is_used_and_recorded_as_not_pinned(tmp_path, monkeypatch):
    from seqnlp.errors import UserError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.csv").write_bytes(GMB_HEADER + b"Sentence: 1,Paris,NNP,B-geo\r\n,sleeps,VBZ,O\r\n")
    out = tmp_path / "raw"
    out.mkdir()
    record = ner.download({"corpus": "gmb", "local": {"train": "mine.csv"}}, out)
    assert record["source"] == "local" and record["pinned"] is False
    assert record["files"]["ner_dataset.csv.gz"]["path"] == "mine.csv"
    assert ner.read_gmb(out / "ner_dataset.csv.gz") == [(["Paris", "sleeps"], ["B-geo", "O"])]
    with pytest.raises(UserError, match="download.local.valid"):
        ner.download({"corpus": "conll2003", "local": {"train": "mine.csv", "valid": "missing", "test": "x"}}, out)
