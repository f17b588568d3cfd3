"""seqnlp.subwords encodes as trax's SubwordTextEncoder does, without TensorFlow."""

import pytest

from seqnlp import subwords
from seqnlp.tasks import topics

TRAINING = ["Stocks rallied on Wall Street today, as oil fell 3.5% to $71.", "The home team won the final match!",
            "New chips make phones faster -- and cheaper.", "Ünïcödé names: Zürich, São Paulo, 東京.",
            "snake_case_names and back\\slashes", "Line\u2028separators\x85and\tother\u00a0spaces."] * 10
TEXTS = TRAINING[:6] + ["", " ", "  two  spaces  ", "unseen characters: ☃ 😀 Ω", "a_b\\c;1u", "new\nline",
                        "Apple's shares (AAPL) rose 2.3 percent.", "...!!!", "x" * 300]


@pytest.fixture(scope="module")
def vocabularies(tmp_path_factory):
    """(trax's encoder, ours) over the same vocabulary file, built by trax as the tokenize stage builds it."""
    directory = tmp_path_factory.mktemp("vocabulary")
    theirs = topics.build_vocabulary(TRAINING, 200, directory / topics.VOCAB_FILE)
    return theirs, subwords.SubwordEncoder(directory / topics.VOCAB_FILE)


def test_ids_are_trax_ids(vocabularies):
    theirs, ours = vocabularies
    assert ours.vocab_size == theirs.vocab_size
    for text in TEXTS:
        assert ours.encode(text) == theirs.encode(text), text


def test_runs_are_trax_tokens():
    from trax.data import tokenizer

    for text in TEXTS:
        assert subwords.split_runs(text) == tokenizer.encode(text), text


def test_topics_encode_matches_trax_tokenize(vocabularies, tmp_path):
    from seqnlp.compat import trax

    theirs, _ = vocabularies
    theirs.store_to_file(str(tmp_path / topics.VOCAB_FILE))
    tokenize = trax.data.Tokenize(keys=[0], vocab_type="subword", vocab_file=topics.VOCAB_FILE,
                                  vocab_dir=str(tmp_path))
    expected = [ids for ids, _ in tokenize((text, 0) for text in TEXTS[1:])]
    assert [list(ids) for ids in topics.encode(TEXTS[1:], tmp_path)] == [list(ids) for ids in expected]
