"""The export stage's copy of a trained model runs without trax and gives what the trax layer gives."""

import json

import numpy as np
import pytest

from seqnlp import layers, layout, trained
from seqnlp.artifacts import write_json
from seqnlp.errors import UserError
from seqnlp.tasks import ner, questions, shakespeare, topics


def export_and_load(layer, inputs, constraints, directory):
    directory.mkdir()
    trained.export(layer, inputs, constraints, {"model": {}}, directory)
    return trained.ExportedModel(directory)


@pytest.mark.slow
def test_one_export_serves_every_batch_size_and_length(tmp_path):
    from trax import shapes

    classifier = topics.TopicClassifier(vocab_size=40, d_feature=6, ngram_order=2, ngram_buckets=16,
                                        pooling="attention", mode="eval")
    classifier.init(shapes.ShapeDtype((1, 4), np.int32))
    layer, inputs, constraints = topics.served_model({}, classifier)
    exported = export_and_load(layer, inputs, constraints, tmp_path / "export")
    rng = np.random.default_rng(0)
    for shape in ((1, 1), (3, 7), (8, 33)):
        ids = rng.integers(0, 40, size=shape).astype(np.int32)
        np.testing.assert_allclose(np.asarray(exported(ids)), np.asarray(classifier(ids)), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("crf", [True, False])
def test_the_exported_tagger_tags_as_the_trained_one_even_one_word_sentences(tmp_path, crf):
    from trax import shapes

    params = {"download": {"corpus": "conll2003"}, "tokenize": {"vocab_size": 30}, "evaluate": {"batch_size": 4},
              "model": {"d_word": 8, "d_hidden": 8, "bidirectional": True, "char_features": True, "d_char": 4,
                        "char_filters": 6, "char_kernel": 3, "dropout": 0.0, "crf": crf}}
    tagger = ner.model(params, mode="eval")
    tagger.init(shapes.signature((np.ones((1, 3), np.int32), np.ones((1, 3, 5), np.int32))))
    exported = export_and_load(*ner.served_model(params, tagger), tmp_path / "export")
    rng = np.random.default_rng(1)
    word_table = rng.integers(1, 30, size=40).astype(np.int32)
    word_table[0] = 0
    char_table = rng.integers(1, 255, size=(40, 5)).astype(np.int32)
    char_table[0] = 0
    forms = [rng.integers(1, 40, size=length) for length in (1, 6, 1, 3, 9, 2)]
    decoder = ner.Decoder(tagger, crf)
    expected = ner.predict(params, decoder, forms, word_table, char_table, batch_size=2)
    predicted = ner.predict(params, exported, forms, word_table, char_table, batch_size=2)
    assert [list(row) for row in predicted] == [list(row) for row in expected]
    assert [len(row) for row in predicted] == [1, 6, 1, 3, 9, 2]


@pytest.mark.slow
def test_the_exported_language_model_samples_the_same_text(tmp_path):
    from trax import shapes

    params = {"model": {"d_model": 16, "n_layers": 2}}
    language_model = shakespeare.GRULM(mode="eval", **params["model"])
    language_model.init(shapes.ShapeDtype((1, 5), np.int32))
    predictor, inputs, constraints = shakespeare.served_model(params, language_model)
    exported = export_and_load(predictor, inputs, constraints, tmp_path / "export")
    alphabet = np.array([shakespeare.EOS, *range(97, 123)])
    reference = shakespeare.Generator(predictor, alphabet)
    for prefix, temperature, seed in (("to be", 1.0, 3), ("", 0.7, 0), ("my lord\nand", 0.0, 1)):
        assert shakespeare.Generator(exported, alphabet).sample(prefix, 60, temperature, seed) == \
            reference.sample(prefix, 60, temperature, seed)


@pytest.mark.slow
def test_the_exported_question_encoder_gives_the_same_vectors(tmp_path):
    from trax import shapes

    encoder = questions.Encoder(60, d_model=8, pooling="masked_mean_max", subword_buckets=20, bidirectional=True,
                                residual=True, mode="eval")
    siamese = questions.Siamese(encoder)
    batch = np.ones((2, 5, 4), np.int32)
    siamese.init(shapes.signature((batch, batch, np.ones((2,), np.int32))))
    exported = export_and_load(*questions.served_model({}, siamese), tmp_path / "export")
    encoded = [np.random.default_rng(length).integers(1, 60, size=(length, 4)).astype(np.int32)
               for length in (1, 4, 17, 2)]
    np.testing.assert_allclose(questions.encode(exported, encoded, 3),
                               questions.encode(layers.compiled(questions.encoder_of(siamese)), encoded, 3),
                               rtol=1e-5, atol=1e-6)


def test_a_missing_or_stale_export_is_refused_with_what_to_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = {"model": {"d_model": 4}}
    model_dir = layout.model("lm")
    model_dir.mkdir(parents=True)
    (model_dir / trained.CHECKPOINT_FILE).write_bytes(b"")
    write_json(model_dir / trained.TRAINING_RECORD, {"model": params["model"], "steps": 10})
    with pytest.raises(UserError, match=r"no exported model at models/serving/lm; run .*seqnlp export lm"):
        trained.load_exported("lm", params)
    layout.exported("lm").mkdir(parents=True)
    write_json(layout.exported("lm") / trained.EXPORT_RECORD, {"training": {"model": params["model"], "steps": 5}})
    with pytest.raises(UserError, match=r"models/serving/lm was exported from another training run"):
        trained.load_exported("lm", params)
    with pytest.raises(UserError, match=r"models/lm was trained with other model params .*\(d_model\)"):
        trained.load_exported("lm", {"model": {"d_model": 8}})
    assert json.loads((model_dir / trained.TRAINING_RECORD).read_text())["steps"] == 10
