import numpy as np
import pytest

from seqnlp.compat import trax
from seqnlp import layers
from seqnlp.tasks import shakespeare, topics
from trax import layers as tl
from trax import shapes


def sublayer_names(layer):
    return [sub.name for sub in layer.sublayers]


def test_seed_variant_is_exactly_the_seed_model():
    model = topics.TopicClassifier(vocab_size=8192, d_feature=50, n_classes=4, ngram_order=1, pooling="mean")
    assert str(model) == str(tl.Serial(tl.Embedding(8192, 50), tl.Mean(axis=1), tl.Dense(4), tl.LogSoftmax()))


@pytest.mark.parametrize("ngram_order, pooling, dropout", [
    (1, "mean", 0.0), (1, "masked_mean", 0.0), (2, "masked_mean", 0.5), (3, "attention", 0.0)])
def test_topic_classifier_shapes(ngram_order, pooling, dropout):
    model = topics.TopicClassifier(vocab_size=20, d_feature=16, n_classes=4, ngram_order=ngram_order,
                                   ngram_buckets=64, pooling=pooling, dropout=dropout)
    ids = np.array([[3, 4, 5, 0, 0], [7, 0, 0, 0, 0]], dtype=np.int32)
    model.init(shapes.signature(ids))
    log_probs = np.asarray(model(ids))
    assert log_probs.shape == (2, 4)
    np.testing.assert_allclose(np.exp(log_probs).sum(axis=1), 1.0, rtol=1e-5)


def test_masked_mean_ignores_padding():
    model = topics.TopicClassifier(vocab_size=20, d_feature=16, n_classes=4, ngram_order=3, ngram_buckets=64,
                                   pooling="masked_mean")
    short = np.array([[3, 4, 5]], dtype=np.int32)
    model.init(shapes.signature(short))
    padded = np.array([[3, 4, 5, 0, 0, 0, 0]], dtype=np.int32)
    np.testing.assert_allclose(np.asarray(model(short)), np.asarray(model(padded)), rtol=1e-5)


@pytest.mark.parametrize("pooling", ["masked_mean", "attention"])
def test_evaluation_pads_to_a_length_step_where_padding_changes_nothing(pooling):
    model = topics.TopicClassifier(vocab_size=20, d_feature=16, n_classes=4, ngram_order=2, ngram_buckets=64,
                                   pooling=pooling)
    texts = [np.array([3, 4, 5], np.int32), np.array([7], np.int32), np.array([2, 9, 11, 4, 6, 8, 3, 5, 12], np.int32)]
    model.init(shapes.signature(texts[0][None]))
    one_by_one = [np.asarray(model(text[None]))[0] for text in texts]
    compiled, batch_shapes = layers.compiled(model), []

    def classifier(batch):
        batch_shapes.append(batch.shape)
        return compiled(batch)

    step = topics.length_step_for({"pooling": pooling})
    np.testing.assert_allclose(topics.predict_log_probs(classifier, texts, 2, step), one_by_one, rtol=1e-5, atol=1e-6)
    assert step == topics.LENGTH_STEP == 8 and batch_shapes == [(2, 8), (1, 16)]


def test_the_seeds_plain_mean_keeps_each_batchs_own_length():
    model = topics.TopicClassifier(vocab_size=20, d_feature=16, n_classes=4, pooling="mean")
    text = np.array([[3, 4, 5]], np.int32)
    model.init(shapes.signature(text))
    padded = np.pad(text, ((0, 0), (0, topics.LENGTH_STEP - 3)))
    assert not np.allclose(np.asarray(model(text)), np.asarray(model(padded)), rtol=1e-3)
    assert topics.length_step_for({"pooling": "mean"}) == topics.length_step_for({}) == 1


def test_ngram_ids_land_after_the_vocabulary_and_skip_padding():
    append = topics._append_ngram_ids(vocab_size=20, buckets=8, order=3)
    ids = np.array([[3, 4, 5, 0], [3, 4, 0, 0]], dtype=np.int32)
    out = np.asarray(append(ids))
    assert out.shape == (2, 4 + 3 + 2)
    assert list(out[:, :4].ravel()) == list(ids.ravel())
    bigrams, trigrams = out[:, 4:7], out[:, 7:]
    assert list(bigrams[0, :2] >= 20) == [True, True] and bigrams[0, 2] == 0
    assert bigrams[1, 0] == bigrams[0, 0] and list(bigrams[1, 1:]) == [0, 0]
    assert 20 <= trigrams[0, 0] < 28 and list(trigrams[0, 1:]) == [0] and list(trigrams[1]) == [0, 0]


def test_gru_language_model_shapes():
    model = shakespeare.GRULM(vocab_size=20, d_model=16, n_layers=2)
    ids = np.array([[5, 6, 7, 1], [8, 1, 0, 0]], dtype=np.int32)
    model.init(shapes.signature(ids))
    assert np.asarray(model(ids)).shape == (2, 4, 20)
    assert sublayer_names(model)[1:] == ["Embedding_20_16", "GRU_16", "Dropout", "GRU_16", "Dropout", "Dense_20",
                                         "LogSoftmax"]


def test_trax_gru_cell_computes_the_seed_equations():
    from seqnlp import gru_reference

    d_in, n_units, batch, time = 5, 7, 3, 6
    cell = tl.Scan(tl.GRUCell(n_units=n_units), axis=1)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(batch, time, d_in)).astype(np.float32)
    h0 = rng.normal(size=(batch, n_units)).astype(np.float32)
    cell.init(shapes.signature((xs, h0)))
    # Larger random weights than trax's initializer, so every gate is far from 0.5.
    w1, b1, w2, b2 = (rng.normal(scale=0.7, size=np.shape(w)).astype(np.float32) for w in cell.sublayers[0].weights)
    cell.sublayers[0].weights = (w1, b1, w2, b2)
    trax_states, _ = cell((xs, h0))
    reference = gru_reference.gru_states(xs, h0, gru_reference.from_trax_weights((w1, b1, w2, b2), d_in))
    np.testing.assert_allclose(np.asarray(trax_states), reference, rtol=1e-4, atol=1e-5)
    assert np.abs(np.asarray(trax_states) - h0[:, None]).max() > 0.1
