"""Duplicate questions: two questions in, the cosine similarity of their encodings out (week 4 of the seed).

A Siamese network: one LSTM encoder, applied to both questions with the same weights, maps each to a
unit vector; the course's triplet loss pulls a question towards its duplicate and away from the other
questions of the batch. Two questions are duplicates when their cosine similarity passes a threshold,
chosen on the validation split.
"""

import codecs
import collections.abc
import gzip
import json
import re
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from seqnlp.artifacts import load_sequences, read_json, save_sequences, write_json
from seqnlp.batching import PaddedBatches, endless_shuffled
from seqnlp.errors import DataError, SourceUnavailable, UserError
from seqnlp.lazy import LazyModule, trax_module
from seqnlp.sources import copy_local, copy_verified, local_file, mirror_directory

sk_metrics = LazyModule("sklearn.metrics")
compat = trax_module("seqnlp.compat")
layers = trax_module("seqnlp.layers")
trax = trax_module()
tl = trax_module("trax.layers")

PAD, UNK = 0, 1
RAW_SPLITS = ("train", "test")
SPLITS = ("train", "valid", "test")
COURSE_THRESHOLD = 0.7
# The mirror's BiMPM-style files: a 10k dev draw (our train + valid) and a 10k test draw, 5k duplicates each.
MIRROR_FILES = {
    "train": ("quora/bimpm_style_dev_10k.tsv.gz",
              "cd9ec6fc91a09222413aa5c0bfc3612f13d57758166e1a641622336d45257520", 363_846),
    "test": ("quora/bimpm_style_test_10k.tsv.gz",
             "4f202895694e14ba10d8d3c47021d975bc73f4809c2a0995f1fc3d99a67059ad", 40_430),
}


# ---- download -------------------------------------------------------------------------------------

def download(params, out):
    """Your own files (``local``), else the mirror when configured, else TFDS ``glue/qqp``.

    Every source is stored as ``label \\t question1 \\t question2 \\t id`` lines, as the mirror has them.
    GLUE's QQP test split is unlabelled, so its validation split is the test set here (canonical_rows
    are GLUE's train and validation sizes).
    """
    if params["local"] is not None:
        record = {"source": "local", "pinned": False, "splits": {}}
        for split in RAW_SPLITS:
            source = local_file(params["local"][split], f"questions.download.local.{split}")
            pairs, _ = read_pairs(source)  # parsed where it is, so an error names the user's file
            record["splits"][split] = {**copy_local(source, out / f"{split}.tsv.gz"), "rows": len(pairs)}
        return record
    mirror = mirror_directory()
    if mirror is not None:
        record = {"source": "mirror", "pinned": True, "splits": {}}
        for split, (relative, sha256, canonical_rows) in MIRROR_FILES.items():
            record["splits"][split] = copy_verified(mirror / relative, sha256, out / f"{split}.tsv.gz")
            rows = len(read_pairs(mirror / relative)[0])
            record["splits"][split].update(rows=rows, canonical_rows=canonical_rows, subset=rows < canonical_rows)
        return record
    return _download_from_tfds(params["tfds_name"], out)


def _download_from_tfds(name, out):
    import tensorflow_datasets as tfds

    record = {"source": f"tfds:{name}", "pinned": True, "splits": {}}
    for split, tfds_split in (("train", "train"), ("test", "validation")):
        try:
            dataset = tfds.as_numpy(tfds.load(name, split=tfds_split, data_dir=str(out / "tfds")))
        except Exception as error:  # tfds raises many kinds of network errors
            raise SourceUnavailable(f"{name} from TFDS", str(error)) from error
        rows = 0
        with open(out / f"{split}.tsv.gz", "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed:
            for example in tqdm(dataset, desc=f"tfds {tfds_split}", unit=" pairs"):
                fields = [str(int(example["label"])), *(_one_line(example[key].decode("utf-8", "replace"))
                                                        for key in ("question1", "question2")), str(example["idx"])]
                compressed.write(("\t".join(fields) + "\n").encode())
                rows += 1
        record["splits"][split] = {"file": f"{split}.tsv.gz", "tfds_split": tfds_split, "rows": rows, "subset": False}
    return record


def _one_line(text):
    return re.sub(r"[\t\r\n]+", " ", text)


# ---- reading --------------------------------------------------------------------------------------

def read_pairs(path):
    """Pairs (label, question1, question2, id) from a ``label \\t q1 \\t q2 \\t id`` file, and counts.

    Lines with broken UTF-8 are decoded with U+FFFD in place of the bad bytes and counted; pairs with an
    empty question are skipped and counted. Anything else that is not a pair is a DataError naming the
    file and line.
    """
    try:
        with gzip.open(path) if str(path).endswith(".gz") else open(path, "rb") as stream:
            raw = stream.read()
    except (EOFError, OSError, zlib.error) as error:  # OSError covers gzip.BadGzipFile
        raise DataError(path, f"cannot read the file ({error})") from None
    raw = raw.removeprefix(codecs.BOM_UTF8)
    pairs, counts = [], Counter()
    for line_number, line in enumerate(raw.split(b"\n"), start=1):
        line = line.removesuffix(b"\r")
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text = line.decode("utf-8", "replace")
            counts["broken_utf8_lines"] += 1
        if "\0" in text:
            raise DataError(path, "NUL byte; expected UTF-8 text (is the file UTF-16 or binary?)", line_number)
        fields = text.split("\t")
        if len(fields) != 4:
            raise DataError(path, f"expected 4 tab-separated fields (label, question1, question2, id), "
                                  f"found {len(fields)}", line_number)
        label, first, second, pair_id = fields
        if label.strip() not in ("0", "1"):
            raise DataError(path, f"label {label!r} is not 0 or 1", line_number)
        if not first.strip() or not second.strip():
            counts["empty_question_pairs"] += 1
            continue
        pairs.append((int(label), first.strip(), second.strip(), pair_id.strip()))
    if not pairs:
        raise DataError(path, "no pairs; expected lines of label \\t question1 \\t question2 \\t id")
    return pairs, {"broken_utf8_lines": counts["broken_utf8_lines"],
                   "empty_question_pairs": counts["empty_question_pairs"]}


# ---- filtering ------------------------------------------------------------------------------------

def filter(params, raw, out):
    """A seeded validation split carved out of train, an optional seeded sample, and the counts of both."""
    stats = {}
    train, stats["train_file"] = read_pairs(raw / "train.tsv.gz")
    test, stats["test_file"] = read_pairs(raw / "test.tsv.gz")
    order = np.random.default_rng(params["seed"]).permutation(len(train))
    n_valid = round(len(train) * params["validation_fraction"])
    splits = {"train": [train[i] for i in sorted(order[n_valid:])],
              "valid": [train[i] for i in sorted(order[:n_valid])], "test": test}
    for split, pairs in splits.items():
        limit = params["max_pairs"][split]
        sampled = limit is not None and limit < len(pairs)
        if sampled:
            keep = np.random.default_rng(params["seed"]).choice(len(pairs), size=limit, replace=False)
            pairs = [pairs[i] for i in sorted(keep)]
        if not pairs:
            raise UserError(f"the {split} split is empty; check questions.filter in params.yaml")
        with open(out / f"{split}.jsonl", "w") as stream:
            for label, first, second, pair_id in pairs:
                stream.write(json.dumps({"label": label, "question1": first, "question2": second, "id": pair_id},
                                        ensure_ascii=False) + "\n")
        stats[split] = {"pairs": len(pairs), "duplicates": sum(label for label, *_ in pairs), "sampled": sampled}
    return stats


def filtered_records(path):
    """The pair records of a filtered split, parsed a line at a time."""
    with open(path) as stream:
        for line in stream:
            yield json.loads(line)


def read_filtered(path):
    return list(filtered_records(path))


# ---- tokenizing -----------------------------------------------------------------------------------

_WORD = re.compile(r"\w+|[^\w\s]")


def split_words(question):
    """Lower-cased words and punctuation marks."""
    return _WORD.findall(question.lower())


def subwords(word, n_min, n_max, per_word):
    """fastText's character n-grams of ``<word>``, shortest first, at most ``per_word`` of them."""
    marked = f"<{word}>"
    grams = [marked[start:start + n] for n in range(n_min, n_max + 1) for start in range(len(marked) - n + 1)]
    return grams[:per_word]


class Vocabulary:
    """Words seen at least ``min_count`` times in the training questions (most frequent first), PAD, UNK,
    and the settings of the hashed character n-grams (``subwords``, or None for words only).

    A question encodes to an int array (words, 1 + per_word): each row is a word id, then the ids of the
    word's n-grams hashed into ``buckets`` (1..buckets; 0 pads), so an unseen word keeps its n-grams.
    """

    def __init__(self, words, subword_settings=None):
        self.words, self.subword_settings = list(words), subword_settings
        self._ids = {word: index for index, word in enumerate(self.words)}
        self.width = 1 + (subword_settings["per_word"] if subword_settings else 0)

    @classmethod
    def build(cls, questions, size, min_count, subword_settings=None):
        counts = Counter(word for question in questions for word in split_words(question))
        kept = [word for word, count in counts.most_common(size - 2) if count >= min_count]
        return cls(["<pad>", "<unk>", *kept], subword_settings)

    def _row(self, word):
        row = [self._ids.get(word, UNK)]
        if self.subword_settings:
            settings = self.subword_settings
            # crc32, not hash(): Python salts str hashes per process
            grams = [zlib.crc32(gram.encode()) % settings["buckets"] + 1
                     for gram in subwords(word, settings["n_min"], settings["n_max"], settings["per_word"])]
            row += grams + [PAD] * (settings["per_word"] - len(grams))
        return row

    def encode(self, question):
        """The (words, width) id array of a question; (0, width) when it has no words."""
        return np.array([self._row(word) for word in split_words(question)], np.int32).reshape(-1, self.width)

    def save(self, path):
        write_json(path, {"words": self.words, "subwords": self.subword_settings})

    @classmethod
    def load(cls, path):
        stored = read_json(path)
        return cls(stored["words"], stored.get("subwords"))


VOCAB_FILE = "vocab.json"


def _unique_questions(records):
    return list(dict.fromkeys(question for record in records for question in (record["question1"],
                                                                               record["question2"])))


def encode_known(vocabulary, questions):
    """Encoded questions, a question with no words read as one UNK (the stored splits never have one)."""
    unknown = np.array([[UNK] + [PAD] * (vocabulary.width - 1)], np.int32)
    return [encoded if len(encoded) else unknown for encoded in map(vocabulary.encode, questions)]


def tokenize(params, filtered, out):
    """Each split as its distinct questions (encoded) and its pairs as indices into them, plus labels."""
    records = {split: read_filtered(filtered / f"{split}.jsonl") for split in SPLITS}
    vocabulary = Vocabulary.build(_unique_questions(records["train"]), params["vocab_size"], params["min_count"],
                                  params["subwords"])
    vocabulary.save(out / VOCAB_FILE)
    stats = {"vocab_size": len(vocabulary.words)}
    for split, split_records in records.items():
        questions = _unique_questions(split_records)
        position = {question: index for index, question in enumerate(questions)}
        encoded = encode_known(vocabulary, questions)
        save_sequences(out / f"{split}.npz", encoded,
                       first=np.array([position[r["question1"]] for r in split_records], np.int32),
                       second=np.array([position[r["question2"]] for r in split_records], np.int32),
                       labels=np.array([r["label"] for r in split_records], np.int32))
        word_ids = np.concatenate(encoded)[:, 0]
        stats[split] = {"pairs": len(split_records), "questions": len(questions),
                        "unknown_word_rate": round(float((word_ids == UNK).mean()), 4),
                        "mean_length": round(float(np.mean([len(e) for e in encoded])), 2)}
    return stats


def load_split(tokens, split):
    """(encoded questions, first indices, second indices, labels) of a split."""
    questions, columns = load_sequences(tokens / f"{split}.npz")
    return questions, columns["first"], columns["second"], columns["labels"]


# ---- model ----------------------------------------------------------------------------------------

def _normalize(vectors):
    np_ = trax.fastmath.numpy
    return vectors / np_.maximum(np_.sqrt((vectors * vectors).sum(axis=-1, keepdims=True)), 1e-9)


def _word_ids(ids):
    return ids[..., 0]


def _subword_ids(ids):
    return ids[..., 1:]


def _with_subwords(word_vectors, subword_vectors, subword_ids):
    """fastText's word vector: the mean of the word's own vector and its n-grams' vectors."""
    mask = (subword_ids > PAD)[..., None].astype(word_vectors.dtype)
    return (word_vectors + (subword_vectors * mask).sum(axis=2)) / (1.0 + mask.sum(axis=2))


def _masked_mean(states, word_ids):
    mask = (word_ids > PAD)[..., None].astype(states.dtype)
    return (states * mask).sum(axis=1) / trax.fastmath.numpy.maximum(mask.sum(axis=1), 1.0)


def _masked_mean_and_max(states, word_ids):
    np_ = trax.fastmath.numpy
    mask = (word_ids > PAD)[..., None].astype(states.dtype)
    largest = np_.where(mask > 0, states, -1e9).max(axis=1)
    return np_.concatenate([_masked_mean(states, word_ids), largest], axis=-1)


def Encoder(vocab_size, d_model=128, pooling="mean", dropout=0.0, residual=False, bidirectional=False, subword_buckets=0,
            mode="train"):
    """Encoded questions (batch, words, 1 + n-grams per word) -> unit vectors.

    ``pooling="mean"`` with no n-grams, no dropout and no residual is the seed's
    ``Serial(Embedding, LSTM, Mean(axis=1), Normalize)`` over the word ids (its mean counts padding,
    so a question's vector depends on how much padding its batch has); ``"masked_mean"`` averages the
    LSTM states of real words only, and ``"masked_mean_max"`` concatenates that mean and the states'
    maximum over real words. ``residual`` adds each word's vector to its LSTM state, so the pooled vector
    keeps the bag of words the LSTM may blur. ``bidirectional`` runs an LSTM each way (the backward one from each
    question's own last word) and concatenates their states (2 x d_model; ``residual`` adds the word's vector
    to both halves). ``subword_buckets`` > 0 adds hashed character n-gram embeddings to each
    word's (fastText's subword vectors), so rare, misspelt and unseen words share what their parts mean.
    """
    def words():
        return tl.Fn("WordIds", _word_ids)

    drop = tl.Dropout(rate=dropout, mode=mode) if dropout else []
    if subword_buckets:
        embed = [tl.Branch([words(), tl.Embedding(vocab_size, d_model)],
                           [tl.Fn("SubwordIds", _subword_ids), tl.Branch(tl.Embedding(subword_buckets + 1, d_model),
                                                                         None)]),
                 tl.Fn("WithSubwords", _with_subwords)]
    else:
        embed = [words(), tl.Embedding(vocab_size, d_model)]
    if bidirectional:
        lstm = layers.BidirectionalLSTM(d_model, mode=mode)
        both_halves = [tl.Select([0, 0], n_in=2), tl.Concatenate()]
        states = [tl.Branch([embed, drop], words()), tl.Residual(lstm, shortcut=both_halves) if residual else lstm]
    else:
        lstm = tl.LSTM(d_model, mode=mode)
        states = [embed, drop, tl.Residual(lstm) if residual else lstm]
    pool = {
        "mean": [states, tl.Mean(axis=1)],
        "masked_mean": [tl.Branch(states, words()), tl.Fn("MaskedMean", _masked_mean)],
        "masked_mean_max": [tl.Branch(states, words()), tl.Fn("MaskedMeanAndMax", _masked_mean_and_max)],
    }[pooling]
    return tl.Serial(pool, drop, tl.Fn("Normalize", _normalize))


def Siamese(encoder):
    """(question1 ids, question2 ids) -> their two unit vectors, from one encoder with one set of weights."""
    # In a Serial the inputs past the first two (a batch's labels) pass through to the loss; trax drops
    # them from the signature of a bare Parallel.
    return tl.Serial(tl.Parallel(encoder, encoder))


MODEL_KEYS = ("d_model", "pooling", "dropout", "residual", "bidirectional")


def model(params, mode="train"):
    settings = params["model"]
    subword_settings = params["tokenize"]["subwords"]
    return Siamese(Encoder(params["tokenize"]["vocab_size"], mode=mode,
                           subword_buckets=subword_settings["buckets"] if subword_settings else 0,
                           **{key: settings[key] for key in MODEL_KEYS}))


# ---- losses ---------------------------------------------------------------------------------------

def triplet_loss(first, second, labels, margin):
    """The course's TripletLoss, batch mean, over the duplicate pairs of the batch.

    Row i's positive is ``second[i]``; its negatives are the other rows' second questions. Each
    duplicate pair adds the hinge against the mean negative and against the closest negative (the most
    similar one that is still less similar than the positive).
    """
    np_ = trax.fastmath.numpy
    scores = first @ second.T
    batch_size = scores.shape[0]
    eye = np_.eye(batch_size)
    positive = np_.diagonal(scores)
    negatives = scores * (1.0 - eye)
    mean_negative = negatives.sum(axis=1) / (batch_size - 1)
    too_close = (eye == 1) | (negatives > positive[:, None])
    closest_negative = (negatives - 2.0 * too_close).max(axis=1)
    per_pair = (np_.maximum(margin - positive + closest_negative, 0.0)
                + np_.maximum(margin - positive + mean_negative, 0.0))
    duplicates = labels.astype(scores.dtype)
    return (per_pair * duplicates).sum() / np_.maximum(duplicates.sum(), 1.0)


def pair_loss(first, second, labels, scale, center):
    """Logistic loss of ``scale * (cosine - center)`` against the pair's label: it pushes the labelled
    non-duplicates (hard negatives: pairs on the same topic) below ``center`` and duplicates above."""
    np_ = trax.fastmath.numpy
    logits = scale * ((first * second).sum(axis=-1) - center)
    signs = 1.0 - 2.0 * labels.astype(logits.dtype)
    return np_.logaddexp(0.0, signs * logits).mean()


def both_ways_triplet_loss(first, second, labels, margin):
    """The mean of :func:`triplet_loss` with each question of a pair as the anchor, so the first questions
    of the batch are negatives too (the course anchors only the first)."""
    return 0.5 * (triplet_loss(first, second, labels, margin) + triplet_loss(second, first, labels, margin))


def _triplet(settings):
    """The triplet loss that training uses: one way, or both ways (see :func:`both_ways_triplet_loss`)."""
    return both_ways_triplet_loss if settings["triplet_both_ways"] else triplet_loss


def _objective(settings):
    margin, weight = settings["triplet_margin"], settings["pair_loss_weight"]
    scale, center = settings["pair_loss_scale"], settings["pair_loss_center"]
    triplet = _triplet(settings)

    def total(first, second, labels):
        loss = triplet(first, second, labels, margin)
        return loss + weight * pair_loss(first, second, labels, scale, center) if weight else loss
    return total


def loss(params):
    return tl.Fn("SiameseLoss", _objective(params["model"]))


def _course_accuracy(first, second, labels):
    predicted = (first * second).sum(axis=-1) > COURSE_THRESHOLD
    return (predicted == (labels > 0)).mean()


def eval_metrics(params):
    triplet, margin = _triplet(params["model"]), params["model"]["triplet_margin"]
    return {"Loss": loss(params),
            "TripletLoss": tl.Fn("TripletLoss", lambda first, second, labels: triplet(first, second, labels, margin)),
            "Accuracy": tl.Fn("AccuracyAt07", _course_accuracy)}


# ---- batches --------------------------------------------------------------------------------------

def training_batches(params, tokens, split, seed):
    """Pairs (question1, question2, label) bucketed by the longer question, endlessly.

    Without the pair loss (the course), only duplicate pairs are drawn; with it, the labelled
    non-duplicates come too, as hard negatives.
    """
    batching = params["train"]
    questions, first, second, labels = load_split(tokens, split)
    drawn = np.arange(len(labels)) if params["model"]["pair_loss_weight"] else np.flatnonzero(labels)
    rows = ((questions[first[row]], questions[second[row]], labels[row]) for row in endless_shuffled(drawn, seed))
    pipeline = trax.data.Serial(
        compat.Shuffle(seed=seed),
        trax.data.FilterByLength(batching["max_length"], length_keys=[0, 1]),
        trax.data.BucketByLength(batching["bucket_boundaries"], batching["bucket_batch_sizes"], length_keys=[0, 1]),
    )
    return pipeline(rows)


# ---- evaluation -----------------------------------------------------------------------------------

def encoder_of(siamese):
    """The one encoder both branches share."""
    return siamese.sublayers[0].sublayers[0]


LENGTH_STEP = 16  # batches are padded to a multiple of this many words, so a few compiled shapes serve all


def encode(forward, questions, batch_size, desc="encoding"):
    """Unit vectors of encoded questions, in order, by ``forward``: ``layers.compiled`` of the encoder, or the
    exported encoder."""
    vectors, batches = None, PaddedBatches(questions, batch_size, LENGTH_STEP)
    for indices, batch in tqdm(batches, desc=desc, unit=" batches", leave=False, disable=len(batches) < 2):
        encoded = np.asarray(forward(batch))
        if vectors is None:
            vectors = np.zeros((len(questions), encoded.shape[1]), np.float32)
        vectors[indices] = encoded
    return vectors


def pair_similarities(forward, tokens, split, batch_size):
    """Cosine similarity of every pair of the split, and the pairs' labels."""
    questions, first, second, labels = load_split(tokens, split)
    vectors = encode(forward, questions, batch_size, desc=f"encoding {split}")
    return (vectors[first] * vectors[second]).sum(axis=1), labels


def best_threshold(similarities, labels):
    """The threshold (``similarity > threshold`` means duplicate) with the highest accuracy, and that accuracy.

    Candidates are the midpoints between consecutive distinct similarities (and one below them all);
    among equally accurate ones the lowest wins.
    """
    order = np.argsort(similarities, kind="stable")
    values, ordered_labels = similarities[order], labels[order]
    distinct = np.concatenate([values[1:] != values[:-1], [True]])  # last index of each run of equal values
    # predicting "duplicate" above position k: correct = non-duplicates up to k + duplicates after k
    non_duplicates_below = np.cumsum(1 - ordered_labels)
    duplicates_above = ordered_labels.sum() - np.cumsum(ordered_labels)
    correct = (non_duplicates_below + duplicates_above)[distinct]
    cuts = values[distinct]
    next_values = np.concatenate([cuts[1:], [cuts[-1] + 1e-6]])
    candidates = np.concatenate([[cuts[0] - 1e-6], (cuts + next_values) / 2])
    scores = np.concatenate([[labels.sum()], correct])
    best = int(np.argmax(scores))
    return float(candidates[best]), float(scores[best] / len(labels))


def _at_threshold(similarities, labels, threshold):
    predicted = (similarities > threshold).astype(np.int32)
    return {"accuracy": float(sk_metrics.accuracy_score(labels, predicted)),
            "precision": float(sk_metrics.precision_score(labels, predicted, zero_division=0)),
            "recall": float(sk_metrics.recall_score(labels, predicted, zero_division=0)),
            "f1": float(sk_metrics.f1_score(labels, predicted, zero_division=0))}


def _histogram(similarities, labels, bins=40):
    edges = np.linspace(-1.0, 1.0, bins + 1)
    duplicates, _ = np.histogram(similarities[labels == 1], edges)
    others, _ = np.histogram(similarities[labels == 0], edges)
    return [{"similarity": round(float((low + high) / 2), 4), "duplicates": int(d), "non_duplicates": int(o)}
            for low, high, d, o in zip(edges[:-1], edges[1:], duplicates, others)]


def evaluate(params, siamese, tokens):
    """Threshold chosen on validation; test accuracy at it and at the course's 0.7, F1, ROC-AUC, PR-AUC."""
    forward, batch_size = layers.compiled(encoder_of(siamese)), params["evaluate"]["batch_size"]
    valid_similarities, valid_labels = pair_similarities(forward, tokens, "valid", batch_size)
    threshold, valid_accuracy = best_threshold(valid_similarities, valid_labels)
    similarities, labels = pair_similarities(forward, tokens, "test", batch_size)
    at_threshold = _at_threshold(similarities, labels, threshold)
    results = {
        "test_pairs": len(labels),
        "threshold": threshold,
        "accuracy": at_threshold["accuracy"],
        "f1": at_threshold["f1"],
        "at_threshold": at_threshold,
        "accuracy_at_0.7": _at_threshold(similarities, labels, COURSE_THRESHOLD)["accuracy"],
        "roc_auc": float(sk_metrics.roc_auc_score(labels, similarities)),
        "pr_auc": float(sk_metrics.average_precision_score(labels, similarities)),
        "valid": {"pairs": len(valid_labels), "accuracy_at_threshold": valid_accuracy,
                  "roc_auc": float(sk_metrics.roc_auc_score(valid_labels, valid_similarities))},
    }
    false_positive, true_positive, _ = sk_metrics.roc_curve(labels, similarities)
    precision, recall, _ = sk_metrics.precision_recall_curve(labels, similarities)
    plots = {
        "roc.json": [{"false_positive_rate": round(float(x), 5), "true_positive_rate": round(float(y), 5)}
                     for x, y in zip(false_positive, true_positive)],
        "precision_recall.json": [{"recall": round(float(r), 5), "precision": round(float(p), 5)}
                                  for r, p in zip(recall, precision)],
        "similarity_histogram.json": _histogram(similarities, labels),
    }
    return results, plots


def describe_data(raw, filtered):
    """Which source and how many pairs, so numbers on the mirror's subset are never taken for full-data ones."""
    source, counts = read_json(raw / "source.json"), read_json(filtered / "stats.json")
    described = {
        "source": source["source"], "pinned_source": source["pinned"],
        **{f"{split}_pairs": counts[split]["pairs"] for split in SPLITS},
        "broken_utf8_lines": counts["train_file"]["broken_utf8_lines"] + counts["test_file"]["broken_utf8_lines"],
        "train_is_subset": bool(source["splits"]["train"].get("subset")) or counts["train"]["sampled"],
    }
    if not source["pinned"]:
        described["sha256"] = {split: record["sha256"] for split, record in source["splits"].items()}
    return described


# ---- the question index and serving -------------------------------------------------------------

INDEX_VECTORS, INDEX_QUESTIONS, INDEX_RECORD = "vectors.npy", "questions.json", "index.json"


class EncodedQuestions(collections.abc.Sequence):
    """Questions encoded as :func:`encode_known` encodes them, each when it is asked for, with their lengths
    known beforehand: batches of them hold one batch's ids, where a list would hold every question's."""

    def __init__(self, vocabulary, texts):
        self.vocabulary, self.texts = vocabulary, texts
        self.lengths = np.array([max(len(split_words(text)), 1) for text in texts], np.int64)

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, index):
        return encode_known(self.vocabulary, [self.texts[index]])[0]


def build_index(params, siamese, filtered, tokens, out):
    """Encode every distinct question of the training and validation pairs; store the validation threshold.

    The pairs are read a line at a time, keeping only the distinct texts, and each question is encoded when
    its batch is reached: beside the texts and their vectors, the index holds one batch, not every pair and
    every encoded question."""
    forward, batch_size = layers.compiled(encoder_of(siamese)), params["evaluate"]["batch_size"]
    vocabulary = Vocabulary.load(tokens / VOCAB_FILE)
    texts = _unique_questions(record for split in ("train", "valid")
                              for record in filtered_records(filtered / f"{split}.jsonl"))
    vectors = encode(forward, EncodedQuestions(vocabulary, texts), batch_size, desc="encoding the index")
    np.save(out / INDEX_VECTORS, vectors)
    write_json(out / INDEX_QUESTIONS, texts)
    threshold, valid_accuracy = best_threshold(*pair_similarities(forward, tokens, "valid", batch_size))
    record = {"questions": len(texts), "dimensions": int(vectors.shape[1]), "threshold": threshold,
              "valid_accuracy_at_threshold": valid_accuracy}
    write_json(out / INDEX_RECORD, record)
    return record


class QuestionIndex:
    """The index stage's output: question texts, their unit vectors and the validation threshold."""

    def __init__(self, directory):
        directory = Path(directory)
        if not (directory / INDEX_RECORD).exists():
            raise UserError(f"no question index at {directory}; run `dvc repro` (or `seqnlp index questions`) first")
        self.vectors = np.load(directory / INDEX_VECTORS)
        self.questions = read_json(directory / INDEX_QUESTIONS)
        self.threshold = read_json(directory / INDEX_RECORD)["threshold"]

    def nearest(self, vector, top):
        """(question, similarity) of the ``top`` most similar questions, most similar first."""
        similarities = self.vectors @ vector
        top = min(top, len(similarities))
        best = np.argpartition(-similarities, top - 1)[:top]
        best = best[np.argsort(-similarities[best], kind="stable")]
        return [(self.questions[i], float(similarities[i])) for i in best]


def served_model(params, siamese):
    """What the export stage writes for `seqnlp duplicates` and `similar`: the encoder, on a batch of questions."""
    return encoder_of(siamese), [("batch, words, width", np.int32)], []


class QuestionEncoder:
    """Raw question text -> unit vector, with the training vocabulary and ``forward``, the encoder as a
    function of a (batch, words, width) batch: ``layers.compiled(encoder_of(siamese))`` or the exported encoder."""

    def __init__(self, params, forward, tokens):
        self.forward, self.batch_size = forward, params["evaluate"]["batch_size"]
        self.vocabulary = Vocabulary.load(tokens / VOCAB_FILE)

    def __call__(self, questions):
        """(vectors, known_words, meaningful): how many of each question's words are in the vocabulary, and
        whether its vector carries any meaning (a known word, or character n-grams when the model reads them)."""
        encoded = []
        for question in questions:
            ids = self.vocabulary.encode(question)
            if not len(ids):
                raise UserError(f"question {question!r} has no words" if question.strip() else "a question is empty")
            encoded.append(ids)
        known_words = [int((ids[:, 0] != UNK).sum()) for ids in encoded]
        meaningful = [bool(count) or self.vocabulary.subword_settings is not None for count in known_words]
        return encode(self.forward, encoded, self.batch_size), known_words, meaningful


def judge_pairs(question_encoder, threshold, pairs):
    """For each (question1, question2): its similarity, the verdict at the threshold and how many words of
    each question the vocabulary knows. The verdict is None when a question's vector means nothing: no
    known word and no character n-grams."""
    vectors, known_words, meaningful = question_encoder([question for pair in pairs for question in pair])
    judged = []
    for index, (first, second) in enumerate(pairs):
        similarity = float(vectors[2 * index] @ vectors[2 * index + 1])
        comparable = meaningful[2 * index] and meaningful[2 * index + 1]
        judged.append({"question1": first, "question2": second, "similarity": similarity,
                       "duplicate": (similarity > threshold) if comparable else None, "threshold": threshold,
                       "known_words": known_words[2 * index: 2 * index + 2]})
    return judged
