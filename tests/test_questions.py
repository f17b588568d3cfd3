"""Duplicate questions: the reader, the losses against NumPy, weight sharing, the threshold, the index."""

import gzip
import json

import numpy as np
import pytest

from seqnlp import layers
from seqnlp.batching import PaddedBatches
from seqnlp.errors import DataError, UserError
from seqnlp.tasks import questions


def gz(path, payload):
    path.write_bytes(gzip.compress(payload))
    return path


def test_reader_decodes_broken_utf8_with_replacement_and_counts_it(tmp_path):
    payload = ("1\tHow do I learn Python?\tWhat is the best way to learn Python?\t7\r\n"
               "0\tIs caf\u00e9 French?\tIs tea English?\t8\n\n").encode() + b"1\tBad \xe2\x80 bytes?\tFine?\t9\n"
    pairs, counts = questions.read_pairs(gz(tmp_path / "pairs.tsv.gz", payload))
    assert pairs == [(1, "How do I learn Python?", "What is the best way to learn Python?", "7"),
                     (0, "Is café French?", "Is tea English?", "8"),
                     (1, "Bad \ufffd bytes?", "Fine?", "9")]
    assert counts == {"broken_utf8_lines": 1, "empty_question_pairs": 0}


def test_reader_skips_and_counts_pairs_with_an_empty_question(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("1\t \tWhy?\t1\n0\tWhat?\tWhy?\t2\n")
    pairs, counts = questions.read_pairs(path)
    assert pairs == [(0, "What?", "Why?", "2")] and counts["empty_question_pairs"] == 1


@pytest.mark.parametrize("payload, line, message", [
    ("1\tWhat?\tWhy?\t1\n1\tWhat?\tWhy?\n", 2, "expected 4 tab-separated fields .* found 3"),
    ("2\tWhat?\tWhy?\t1\n", 1, "label '2' is not 0 or 1"),
    ("1\tWhat?\tWhy?\t1\nyes\tWhat?\tWhy?\t1\n", 2, "label 'yes' is not 0 or 1"),
    ("1\tWh\0at?\tWhy?\t1\n", 1, "NUL byte"),
])
def test_reader_names_file_and_line(tmp_path, payload, line, message):
    path = gz(tmp_path / "pairs.tsv.gz", payload.encode())
    with pytest.raises(DataError, match=f"{path}:{line}: {message}"):
        questions.read_pairs(path)


def test_reader_refuses_an_empty_or_broken_file(tmp_path):
    with pytest.raises(DataError, match="no pairs"):
        questions.read_pairs(gz(tmp_path / "empty.tsv.gz", b"\n\n"))
    broken = tmp_path / "broken.tsv.gz"
    broken.write_bytes(gzip.compress(b"1\ta\tb\t1\n" * 100)[:20])
    with pytest.raises(DataError, match="cannot read the file"):
        questions.read_pairs(broken)


def test_filter_on_the_mirror_counts_broken_lines_and_splits_with_a_seed(mirror, tmp_path):
    raw, filtered = tmp_path / "raw", tmp_path / "filtered"
    raw.mkdir(), filtered.mkdir()
    record = questions.download({"local": None, "tfds_name": "glue/qqp"}, raw)
    assert record["splits"]["train"] == {**record["splits"]["train"], "rows": 10_000, "subset": True}
    params = {"validation_fraction": 0.1, "max_pairs": {"train": None, "valid": None, "test": None}, "seed": 0}
    stats = questions.filter(params, raw, filtered)
    assert stats["train_file"]["broken_utf8_lines"] == 83 and stats["test_file"]["broken_utf8_lines"] == 72
    assert [stats[split]["pairs"] for split in questions.SPLITS] == [9000, 1000, 10_000]
    assert stats["test"]["duplicates"] == 5000
    train_ids = {r["id"] for r in questions.read_filtered(filtered / "train.jsonl")}
    valid_ids = {r["id"] for r in questions.read_filtered(filtered / "valid.jsonl")}
    assert not train_ids & valid_ids and len(train_ids | valid_ids) == 10_000


# ---- losses ---------------------------------------------------------------------------------------

def unit(rows):
    rows = np.asarray(rows, np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def numpy_triplet_loss(first, second, labels, margin):
    """The course's TripletLoss written out row by row, over the duplicate rows only."""
    scores = first @ second.T
    losses = []
    for i in np.flatnonzero(labels):
        positive = scores[i, i]
        others = np.delete(scores[i], i)
        mean_negative = others.mean()
        below = others[others <= positive]
        closest = below.max() if below.size else -2.0  # no negative below the positive: a zero hinge
        losses.append(max(margin - positive + closest, 0) + max(margin - positive + mean_negative, 0))
    return np.mean(losses)


def test_triplet_loss_matches_numpy_on_a_hand_made_batch():
    first = unit([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    # Row 0's positive scores 0.8; its negatives score 0.9 (more similar than the positive: masked out of
    # the closest negative), 0.6 (the closest negative) and 0.0.
    second = unit([[0.8, 0.6, 0], [0.9, 0.1, 0.42], [0.6, 0.3, 0.74], [0, 0.2, 0.98]])
    labels = np.array([1, 1, 1, 1], np.int32)
    scores = first @ second.T
    assert scores[0, 1] > scores[0, 0] > scores[0, 2]
    expected = numpy_triplet_loss(first, second, labels, 0.25)
    assert float(questions.triplet_loss(first, second, labels, 0.25)) == pytest.approx(expected, rel=1e-5)
    # with row 0 the only anchor: its closest negative is the 0.6, not the 0.9 that beats the positive
    only_first = float(questions.triplet_loss(first[:3], second[:3], np.array([1, 0, 0]), 0.25))
    mean_negative = (scores[0, 1] + scores[0, 2]) / 2
    assert only_first == pytest.approx(max(0.25 - scores[0, 0] + scores[0, 2], 0)
                                       + max(0.25 - scores[0, 0] + mean_negative, 0), rel=1e-5)


def test_triplet_loss_ignores_non_duplicate_rows_as_anchors_but_keeps_them_as_negatives():
    generator = np.random.default_rng(0)
    first, second = unit(generator.normal(size=(6, 4))), unit(generator.normal(size=(6, 4)))
    labels = np.array([1, 0, 1, 1, 0, 1], np.int32)
    expected = numpy_triplet_loss(first, second, labels, 0.25)
    assert float(questions.triplet_loss(first, second, labels, 0.25)) == pytest.approx(expected, rel=1e-5)
    assert float(questions.triplet_loss(first, second, labels, 0.25)) != pytest.approx(
        numpy_triplet_loss(first, second, np.ones(6, np.int32), 0.25))


def test_both_ways_triplet_loss_anchors_each_question_of_a_pair_in_turn():
    generator = np.random.default_rng(1)
    first, second = unit(generator.normal(size=(5, 4))), unit(generator.normal(size=(5, 4)))
    labels = np.array([1, 1, 0, 1, 1], np.int32)
    one_way, other_way = (numpy_triplet_loss(first, second, labels, 0.25),
                          numpy_triplet_loss(second, first, labels, 0.25))
    assert one_way != pytest.approx(other_way)
    assert float(questions.both_ways_triplet_loss(first, second, labels, 0.25)) == pytest.approx(
        (one_way + other_way) / 2, rel=1e-5)


@pytest.mark.parametrize("both_ways", [True, False])
def test_the_triplet_loss_curve_is_the_triplet_loss_that_training_uses(both_ways):
    generator = np.random.default_rng(2)
    first, second = unit(generator.normal(size=(5, 4))), unit(generator.normal(size=(5, 4)))
    labels = np.array([1, 0, 1, 1, 1], np.int32)
    settings = {"triplet_margin": 0.25, "triplet_both_ways": both_ways, "pair_loss_weight": 0.0,
                "pair_loss_scale": 10.0, "pair_loss_center": 0.5}
    metric = questions.eval_metrics({"model": settings})["TripletLoss"]
    expected = numpy_triplet_loss(first, second, labels, 0.25)
    if both_ways:
        expected = (expected + numpy_triplet_loss(second, first, labels, 0.25)) / 2
    assert float(metric((first, second, labels))) == pytest.approx(expected, rel=1e-5)


def test_pair_loss_is_the_logistic_loss_of_the_scaled_cosine():
    first, second = unit([[1, 0], [1, 0]]), unit([[1, 1], [0, 1]])
    labels = np.array([1, 0], np.int32)
    cosines = np.array([np.sqrt(0.5), 0.0])
    expected = np.mean([np.log1p(np.exp(-10 * (cosines[0] - 0.5))), np.log1p(np.exp(10 * (cosines[1] - 0.5)))])
    assert float(questions.pair_loss(first, second, labels, 10.0, 0.5)) == pytest.approx(expected, rel=1e-5)


# ---- the model ------------------------------------------------------------------------------------

def tiny_siamese(pooling="masked_mean_max", vocab_size=50, subword_buckets=0, width=1, bidirectional=False):
    from trax import shapes

    encoder = questions.Encoder(vocab_size, d_model=8, pooling=pooling, subword_buckets=subword_buckets,
                                bidirectional=bidirectional, residual=bidirectional, mode="eval")
    siamese = questions.Siamese(encoder)
    batch = (np.ones((2, 5, width), np.int32), np.ones((2, 7, width), np.int32), np.ones((2,), np.int32))
    siamese.init(shapes.signature(batch))
    return siamese


def words(*rows):
    """Encoded questions of word ids only: (batch, words, 1)."""
    return np.array(rows, np.int32)[..., None]


def test_both_questions_go_through_one_encoder_with_one_set_of_weights():
    from trax import layers as tl

    siamese = tiny_siamese()
    encoder = questions.encoder_of(siamese)
    parallel = siamese.sublayers[0]
    assert parallel.sublayers[0] is parallel.sublayers[1]
    own = [w for w in tl.base.flatten_weights_and_state(encoder.weights, ())[0] if hasattr(w, "shape")]
    stored = [w for w in tl.base.flatten_weights_and_state(siamese.weights, ())[0] if hasattr(w, "shape")]
    assert len(stored) == len(own) > 0  # the second branch stores no copy
    ids = words([3, 4, 5, 0])
    v1, v2 = siamese((ids, ids))
    np.testing.assert_allclose(v1, v2, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(v1), axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_masked_pooling_ignores_padding_and_the_labels_pass_through_to_the_loss(bidirectional):
    siamese = tiny_siamese(bidirectional=bidirectional)
    short, padded = words([3, 4, 5]), words([3, 4, 5, 0, 0, 0])
    v_short, v_padded, labels = siamese((short, padded, np.array([1], np.int32)))
    np.testing.assert_allclose(v_short, v_padded, rtol=1e-5, atol=1e-6)
    assert labels.tolist() == [1]


@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_compiled_encoder_matches_the_layer_and_padding_to_a_length_step_changes_nothing(bidirectional):
    siamese = tiny_siamese(pooling="masked_mean", subword_buckets=20, width=3, bidirectional=bidirectional)
    questions_ids = [np.array([[5, 7, 9], [6, 8, 0]], np.int32), np.array([[4, 3, 0]], np.int32)]
    by_layer = [np.asarray(siamese((q[None], q[None], np.ones(1, np.int32)))[0])[0] for q in questions_ids]
    compiled = questions.encode(layers.compiled(questions.encoder_of(siamese)), questions_ids, batch_size=8)
    np.testing.assert_allclose(compiled, by_layer, rtol=1e-5, atol=1e-6)
    [(_, batch)] = PaddedBatches(questions_ids, 8, questions.LENGTH_STEP)
    assert batch.shape == (2, questions.LENGTH_STEP, 3)


def test_the_course_variant_draws_duplicates_only(tmp_path):
    from seqnlp.artifacts import save_sequences

    save_sequences(tmp_path / "train.npz", [words(question)[0] for question in ([2, 3], [4], [5, 6, 7], [8])], first=np.array([0, 2, 0], np.int32),
                   second=np.array([1, 3, 3], np.int32), labels=np.array([1, 0, 1], np.int32))
    params = {"model": {"pair_loss_weight": 0.0},
              "train": {"max_length": 64, "bucket_boundaries": [8], "bucket_batch_sizes": [4, 4]}}
    first, second, labels = next(questions.training_batches(params, tmp_path, "train", 0))
    assert labels.tolist() == [1, 1, 1, 1] and first.shape[0] == 4 and first.shape[2] == second.shape[2] == 1
    params["model"]["pair_loss_weight"] = 1.0
    batches = questions.training_batches(params, tmp_path, "train", 0)
    assert {int(label) for _ in range(3) for label in next(batches)[2]} == {0, 1}


def test_subwords_are_fastText_character_ngrams_of_the_marked_word():
    assert questions.subwords("where", 3, 4, 100) == ["<wh", "whe", "her", "ere", "re>",
                                                     "<whe", "wher", "here", "ere>"]
    assert questions.subwords("where", 3, 5, 4) == ["<wh", "whe", "her", "ere"]
    assert questions.subwords("?", 3, 5, 10) == ["<?>"]


def test_an_unseen_word_keeps_its_ngrams_and_the_ids_do_not_depend_on_the_process():
    import subprocess
    import sys

    settings = {"n_min": 3, "n_max": 5, "per_word": 6, "buckets": 1000}
    vocabulary = questions.Vocabulary.build(["How do I learn Python?"], 100, 1, settings)
    encoded = vocabulary.encode("How do I learn Pythons?")
    assert encoded.shape == (6, 7)
    assert encoded[4, 0] == questions.UNK and (encoded[4, 1:] > 0).all()  # "pythons": unseen, n-grams kept
    python = vocabulary.encode("python")[0]
    assert (python[1:4] == encoded[4, 1:4]).all()  # <py, pyt, yth are shared with "pythons"
    assert (encoded[5, 2:] == questions.PAD).all()  # "?" has one n-gram, "<?>"
    other_process = subprocess.run(
        [sys.executable, "-c", "from seqnlp.tasks.questions import Vocabulary as V; import sys; "
         f"v = V.build(['How do I learn Python?'], 100, 1, {settings!r}); print(v.encode('python').tolist())"],
        capture_output=True, text=True, check=True).stdout
    assert json.loads(other_process) == [python.tolist()]


def test_a_word_vector_is_the_mean_of_its_own_and_its_ngrams_vectors():
    word = np.array([[[1.0, 2.0]]])
    ngrams = np.array([[[[3.0, 0.0], [0.0, 3.0], [100.0, 100.0]]]])
    mixed = questions._with_subwords(word, ngrams, np.array([[[4, 9, questions.PAD]]]))
    np.testing.assert_allclose(mixed, [[[4.0 / 3, 5.0 / 3]]])  # the padding n-gram is left out


def test_ngrams_tell_unknown_words_apart():
    encoder = layers.compiled(questions.encoder_of(tiny_siamese(pooling="masked_mean", subword_buckets=20, width=3)))
    unknown = questions.UNK
    vectors = np.asarray(encoder(np.array([[[unknown, 7, 9]], [[unknown, 8, 9]]], np.int32)))
    assert not np.allclose(vectors[0], vectors[1])


# ---- threshold and metrics ------------------------------------------------------------------------

@pytest.mark.parametrize("similarities, labels, threshold, accuracy", [
    ([0.1, 0.4, 0.6, 0.9], [0, 0, 1, 1], 0.5, 1.0),
    ([0.9, 0.1, 0.6, 0.4], [1, 0, 1, 0], 0.5, 1.0),            # order does not matter
    ([0.2, 0.5, 0.5, 0.8], [0, 1, 0, 1], 0.35, 0.75),         # tied values fall on one side together
    ([0.3, 0.7], [1, 1], 0.3 - 1e-6, 1.0),                    # all duplicates: below them all
    ([0.3, 0.7], [0, 0], 0.7 + 5e-7, 1.0),                    # none: above them all
])
def test_best_threshold_maximises_accuracy(similarities, labels, threshold, accuracy):
    found, found_accuracy = questions.best_threshold(np.array(similarities), np.array(labels))
    assert found == pytest.approx(threshold, abs=1e-9) and found_accuracy == accuracy
    predicted = np.array(similarities) > found
    assert (predicted == np.array(labels)).mean() == accuracy


def test_best_threshold_is_no_worse_than_any_other_threshold():
    generator = np.random.default_rng(1)
    similarities = np.round(generator.uniform(-1, 1, 300), 2)
    labels = (similarities + generator.normal(0, 0.5, 300) > 0.2).astype(int)
    _, best = questions.best_threshold(similarities, labels)
    for threshold in np.linspace(-1.01, 1.01, 500):
        assert ((similarities > threshold) == labels).mean() <= best + 1e-12


# ---- the index and serving ------------------------------------------------------------------------

def test_index_returns_the_nearest_questions_most_similar_first(tmp_path):
    from seqnlp.artifacts import write_json

    vectors = unit([[1, 0], [0, 1], [1, 1], [-1, 0.1]])
    np.save(tmp_path / questions.INDEX_VECTORS, vectors)
    write_json(tmp_path / questions.INDEX_QUESTIONS, ["east?", "north?", "north-east?", "west?"])
    write_json(tmp_path / questions.INDEX_RECORD, {"threshold": 0.5})
    index = questions.QuestionIndex(tmp_path)
    nearest = index.nearest(unit([[1, 0.2]])[0], 3)
    assert [text for text, _ in nearest] == ["east?", "north-east?", "north?"]
    assert [s for _, s in nearest] == sorted((s for _, s in nearest), reverse=True)
    assert len(index.nearest(vectors[0], 10)) == 4 and index.threshold == 0.5
    with pytest.raises(UserError, match="no question index"):
        questions.QuestionIndex(tmp_path / "missing")


def test_the_index_holds_each_distinct_question_once_encoded_as_all_at_once(tmp_path):
    filtered, tokens, out = (tmp_path / name for name in ("filtered", "tokens", "index"))
    for folder in (filtered, tokens, out):
        folder.mkdir()
    pairs = {"train": [("how do i learn python ?", "how can i learn python ?", 1),
                       ("what is love ?", "how do i learn python ?", 0),
                       ("why is the sky blue ?", "what makes the sky blue ?", 1)],
             "valid": [("what is love ?", "what is love really ?", 1), ("is python slow ?", "why is the sky blue ?", 0)],
             "test": [("is java slow ?", "is python slow ?", 0)]}
    for split, rows in pairs.items():
        (filtered / f"{split}.jsonl").write_text("".join(
            json.dumps({"label": label, "question1": first, "question2": second, "id": f"{split}-{number}"}) + "\n"
            for number, (first, second, label) in enumerate(rows)))
    questions.tokenize({"vocab_size": 50, "min_count": 1, "subwords": None}, filtered, tokens)
    siamese = tiny_siamese()
    record = questions.build_index({"evaluate": {"batch_size": 2}}, siamese, filtered, tokens, out)
    texts = list(dict.fromkeys(question for split in ("train", "valid") for first, second, _ in pairs[split]
                               for question in (first, second)))
    index = questions.QuestionIndex(out)
    assert index.questions == texts and record["questions"] == len(texts) == 7
    vocabulary = questions.Vocabulary.load(tokens / questions.VOCAB_FILE)
    at_once = questions.encode(layers.compiled(questions.encoder_of(siamese)),
                               questions.encode_known(vocabulary, texts), batch_size=2)
    np.testing.assert_array_equal(index.vectors, at_once)


def test_questions_encoded_when_asked_for_are_those_encoded_all_at_once():
    vocabulary = questions.Vocabulary(["<pad>", "<unk>", "how", "do", "i", "learn", "python", "?"],
                                      {"n_min": 3, "n_max": 4, "per_word": 3, "buckets": 11})
    texts = ["how do i learn python ?", "  ", "learn cobol", "how ?"]
    lazily = questions.EncodedQuestions(vocabulary, texts)
    at_once = questions.encode_known(vocabulary, texts)
    assert len(lazily) == 4 and lazily.lengths.tolist() == [len(encoded) for encoded in at_once] == [6, 1, 2, 2]
    for index, encoded in enumerate(at_once):
        np.testing.assert_array_equal(lazily[index], encoded)
    assert lazily[1].tolist() == [[questions.UNK, 0, 0, 0]]


def test_pairs_with_an_empty_or_unknown_question_are_refused_or_left_undecided(tmp_path):
    questions.Vocabulary(["<pad>", "<unk>", "how", "do", "i", "learn", "python", "?"]).save(
        tmp_path / questions.VOCAB_FILE)
    encoder = questions.QuestionEncoder({"evaluate": {"batch_size": 4}},
                                        layers.compiled(questions.encoder_of(tiny_siamese())), tmp_path)
    judged = questions.judge_pairs(encoder, 0.5, [("How do I learn Python?", "how do i learn python ?"),
                                                  ("How do I learn Python?", "Zyzzyva qwxz")])
    assert judged[0]["similarity"] == pytest.approx(1.0, abs=1e-5) and judged[0]["duplicate"] is True
    assert judged[1]["duplicate"] is None and -1 <= judged[1]["similarity"] <= 1
    assert judged[0]["known_words"] == [6, 6] and judged[1]["known_words"] == [6, 0]  # "?" counts
    with pytest.raises(UserError, match="a question is empty"):
        questions.judge_pairs(encoder, 0.5, [("How do I learn Python?", "  ")])
    json.dumps(judged)  # serialisable as `duplicates --json` prints it


def test_with_ngrams_a_question_of_unknown_words_is_still_judged(tmp_path):
    settings = {"n_min": 3, "n_max": 5, "per_word": 6, "buckets": 20}
    questions.Vocabulary(["<pad>", "<unk>", "how", "?"], settings).save(tmp_path / questions.VOCAB_FILE)
    siamese = tiny_siamese(subword_buckets=20, width=7)
    encoder = questions.QuestionEncoder({"evaluate": {"batch_size": 4}},
                                        layers.compiled(questions.encoder_of(siamese)), tmp_path)
    [judged] = questions.judge_pairs(encoder, 0.5, [("How?", "Zyzzyva qwxz")])
    assert judged["known_words"] == [2, 0] and judged["duplicate"] in (True, False)
