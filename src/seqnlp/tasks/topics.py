"""AG News topic classification: a news text in, one of four topics out (week 1 of the seed)."""

import codecs
import collections
import csv
import gzip
import html
import io
import re
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from seqnlp.artifacts import load_sequences, read_json, save_sequences
from seqnlp.batching import PaddedBatches, Zipped, endless_shuffled
from seqnlp.errors import DataError, SourceUnavailable
from seqnlp.lazy import LazyModule, trax_module
from seqnlp.sources import copy_local, copy_verified, local_file, mirror_directory
from seqnlp.subwords import SubwordEncoder, split_runs
from seqnlp.tasks import cross_entropy_metrics

pd = LazyModule("pandas")
sk_metrics = LazyModule("sklearn.metrics")
compat = trax_module("seqnlp.compat")
layers = trax_module("seqnlp.layers")
trax = trax_module()
tl = trax_module("trax.layers")
text_encoder = trax_module("trax.data.text_encoder")

LABELS = ("World", "Sports", "Business", "Sci/Tech")
SPLITS = ("train", "test")
FILTERED_SPLITS = ("train", "valid", "test")
HEADER = ["class_index", "title", "description"]
VOCAB_FILE = "vocab.subword"
MIRROR_FILES = {
    "train": ("ag_news/train_subset20k_balanced.csv.gz",
              "3404520cbfd55bef3241427df4507bcf15dea883d98307b11b229d73c7686ec8", 120_000),
    "test": ("ag_news/test.csv.gz",
             "3c277beb6ce3dd635407635cb90a7c5ceaf87168fabb3be218e39aa2b097f706", 7_600),
}


# ---- download -------------------------------------------------------------------------------------

def download(params, out):
    """Your own files (``local``) when set, else the mirror when configured, else TFDS."""
    if params.get("local") is not None:
        return _copy_local(params["local"], out)
    mirror = mirror_directory()
    if mirror is not None:
        return _copy_from_mirror(mirror, out)
    return _download_from_tfds(params["tfds_name"], out)


def _copy_local(paths, out):
    record = {"source": "local", "pinned": False, "splits": {}}
    for split in SPLITS:
        source = local_file(paths[split], f"topics.download.local.{split}")
        rows = len(read_csv(source))  # parsed where it is, so an error names the user's file
        record["splits"][split] = {**copy_local(source, out / f"{split}.csv.gz"), "rows": rows}
    return record


def _copy_from_mirror(mirror, out):
    record = {"source": "mirror", "pinned": True, "splits": {}}
    for split, (relative, sha256, canonical_rows) in MIRROR_FILES.items():
        record["splits"][split] = copy_verified(mirror / relative, sha256, out / f"{split}.csv.gz")
        rows = len(read_csv(mirror / relative))  # the mirror file, not the staged copy that vanishes on error
        record["splits"][split].update(rows=rows, canonical_rows=canonical_rows, subset=rows < canonical_rows)
    return record


def _download_from_tfds(name, out):
    import tensorflow_datasets as tfds

    record = {"source": f"tfds:{name}", "pinned": True, "splits": {}}
    for split in SPLITS:
        try:
            dataset = tfds.as_numpy(tfds.load(name, split=split, data_dir=str(out / "tfds")))
        except Exception as error:  # tfds raises many kinds of network errors
            raise SourceUnavailable(f"{name} from TFDS", str(error)) from error
        path = out / f"{split}.csv.gz"
        with gzip.open(path, "wt", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(HEADER)
            rows = 0
            for example in tqdm(dataset, desc=f"tfds {split}", unit=" rows"):
                writer.writerow([int(example["label"]) + 1, example["title"].decode(), example["description"].decode()])
                rows += 1
        record["splits"][split] = {"file": path.name, "rows": rows, "subset": False}
    return record


# ---- reading and cleaning -------------------------------------------------------------------------

def read_csv(path):
    """Read an ag_news_csv file (header optional) into a frame with label 0-3, title, description.

    Any problem with the file is a DataError naming it (and the line, where there is one).
    """
    text = _decode(path, _read_bytes(path))
    if not text.strip():
        raise DataError(path, "file is empty; expected CSV rows of class_index,title,description")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows, row_start = [], 1
    try:
        for row in reader:
            if row and not (row_start == 1 and row == HEADER):  # blank lines carry no row
                rows.append(_parse_row(path, row, row_start))
            row_start = reader.line_num + 1
    except csv.Error as error:
        raise DataError(path, f"malformed CSV in the row that starts here: {error}", row_start) from None
    if not rows:
        raise DataError(path, "no data rows; expected CSV rows of class_index,title,description")
    return pd.DataFrame(rows, columns=["label", "title", "description"])


def _read_bytes(path):
    """The file's bytes, decompressed when it is named .gz."""
    try:
        if str(path).endswith(".gz"):
            with gzip.open(path) as stream:
                return stream.read()
        return Path(path).read_bytes()
    except (EOFError, OSError, zlib.error) as error:  # OSError covers gzip.BadGzipFile
        raise DataError(path, f"cannot read the file ({error})") from None


def _decode(path, raw):
    # Spreadsheets often save UTF-8 with a byte-order mark; it is not part of the header.
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(path, f"undecodable bytes ({error.reason}); expected UTF-8 text", line) from None
    # csv accepts NUL, but in a text file it means binary data or UTF-16, which would parse into nonsense.
    if "\0" in text:
        raise DataError(path, "NUL byte; expected UTF-8 text (is the file UTF-16 or binary?)",
                        text.count("\n", 0, text.index("\0")) + 1)
    return text


def _parse_row(path, row, line):
    if len(row) != 3:
        raise DataError(path, f"expected 3 fields (class_index,title,description), found {len(row)}", line)
    if row[0].strip() not in ("1", "2", "3", "4"):
        raise DataError(path, f"class index {row[0]!r} is not one of 1, 2, 3, 4", line)
    return int(row[0]) - 1, row[1], row[2]


_ESCAPED_ENTITY = re.compile(r" ?#(\d+);")
_HTML_TAG = re.compile(r"<[^>]{0,200}>")
_SPACES = re.compile(r"\s+")


def clean_text(text):
    """Undo the ag_news_csv escapes: ``\\`` for a line break, `` #36;`` for ``&#36;``, HTML entities and tags."""
    text = text.replace("\\", " ")
    text = _ESCAPED_ENTITY.sub(lambda match: chr(int(match.group(1))), text)
    text = _HTML_TAG.sub(" ", html.unescape(text))
    return _SPACES.sub(" ", text).strip()


def filter(params, raw, out):
    stats = {}
    for split in SPLITS:
        frame = read_csv(raw / f"{split}.csv.gz")
        rows_read = len(frame)
        limit = params["max_rows"][split]
        if limit is not None and limit < rows_read:
            frame = frame.sample(n=limit, random_state=params["seed"]).sort_index()
        frame["text"] = frame[params["fields"]].apply(lambda row: " ".join(map(clean_text, row)).strip(), axis=1)
        if params["lowercase"]:
            frame["text"] = frame["text"].str.lower()
        empty = frame["text"] == ""
        frame = frame[~empty]
        if split == "train":
            valid = frame.sample(frac=params["validation_fraction"], random_state=params["seed"]).sort_index()
            frame = frame.drop(valid.index)
            _require_rows(valid, raw / f"{split}.csv.gz", "validation", params)
            _write_jsonl(valid, out / "valid.jsonl")
            stats["valid"] = {"kept": len(valid)}
        _require_rows(frame, raw / f"{split}.csv.gz", split, params)
        _write_jsonl(frame, out / f"{split}.jsonl")
        stats[split] = {
            "rows_read": rows_read,
            "rows_sampled": rows_read if limit is None else min(limit, rows_read),
            "dropped_empty_text": int(empty.sum()),
            "kept": len(frame),
            "per_label": {LABELS[label]: int(count) for label, count in frame["label"].value_counts().sort_index().items()},
        }
    stats["fields"] = list(params["fields"])
    return stats


def _require_rows(frame, source, split, params):
    if frame.empty:
        raise DataError(source, f"no {split} row is left after filtering (fields {params['fields']}, max_rows "
                                f"{params['max_rows']}, validation_fraction {params['validation_fraction']})")


def _write_jsonl(frame, path):
    frame[["label", "text"]].to_json(path, orient="records", lines=True, force_ascii=False)


def read_filtered(path):
    return pd.read_json(path, orient="records", lines=True, dtype={"label": int, "text": str})


# ---- tokenizing -----------------------------------------------------------------------------------

def build_vocabulary(texts, vocab_size, path):
    """Train a subword vocabulary of about ``vocab_size`` ids with trax's own SubwordTextEncoder."""
    token_counts = collections.Counter()
    for text in tqdm(texts, desc="counting tokens", unit=" texts"):
        token_counts.update(split_runs(text))
    with tqdm(total=1, desc=f"building {vocab_size}-id subword vocabulary", bar_format="{desc}: {elapsed}") as bar:
        encoder = text_encoder.SubwordTextEncoder.build_to_target_size(
            vocab_size, token_counts, min_val=1, max_val=1000, num_iterations=4)
        bar.update()
    encoder.store_to_file(str(path))
    return encoder


def encode(texts, vocab_dir):
    """Subword ids of each text, as the seed's trax.data.Tokenize gives them, without importing TensorFlow."""
    encoder = SubwordEncoder(Path(vocab_dir) / VOCAB_FILE)
    return [np.array(encoder.encode(text), np.int64) for text in tqdm(texts, desc="encoding", unit=" texts",
                                                                       disable=len(texts) < 100)]


def tokenize(params, filtered, out):
    frames = {split: read_filtered(filtered / f"{split}.jsonl") for split in FILTERED_SPLITS}
    encoder = build_vocabulary(frames["train"]["text"], params["vocab_size"], out / VOCAB_FILE)
    stats = {"vocab_size": encoder.vocab_size}
    for split, frame in frames.items():
        sequences = encode(list(frame["text"]), out)
        save_sequences(out / f"{split}.npz", sequences, labels=frame["label"].to_numpy(np.int32))
        lengths = np.array([len(sequence) for sequence in sequences])
        stats[split] = {"texts": len(sequences), "mean_length": round(float(lengths.mean()), 2),
                        "max_length": int(lengths.max())}
    return stats


# ---- model ----------------------------------------------------------------------------------------

def _append_ngram_ids(vocab_size, buckets, order):
    """Append one id per run of 2..``order`` adjacent tokens, hashed into ``buckets`` ids after the vocabulary."""
    np_ = trax.fastmath.numpy

    def append(ids):
        columns = [ids]
        for n in range(2, order + 1):
            windows = [ids[:, start: ids.shape[1] - n + 1 + start] for start in range(n)]
            hashed = windows[0]
            for window in windows[1:]:
                hashed = hashed * 7919 + window
            real = np_.all(np_.stack([window > 0 for window in windows]), axis=0)
            columns.append(np_.where(real, vocab_size + hashed % buckets, 0))
        return np_.concatenate(columns, axis=1)
    return tl.Fn("AppendNgramIds", append)


def _masked_mean(embeddings, ids):
    mask = (ids > 0)[..., None].astype(embeddings.dtype)
    return (embeddings * mask).sum(axis=1) / trax.fastmath.numpy.maximum(mask.sum(axis=1), 1.0)


def _attention_pool(embeddings, scores, ids):
    scores = trax.fastmath.numpy.where(ids > 0, scores[..., 0], -1e9)
    weights = trax.fastmath.numpy.exp(scores - trax.fastmath.logsumexp(scores, axis=1, keepdims=True))
    return (embeddings * weights[..., None]).sum(axis=1)


def TopicClassifier(vocab_size=8192, d_feature=50, n_classes=4, ngram_order=1, ngram_buckets=0, pooling="mean",
                    dropout=0.0, mode="train"):
    """Bag-of-subwords classifier: token ids (batch, length) -> log-probabilities (batch, n_classes).

    With ``ngram_order=1``, ``pooling="mean"`` and no dropout this is the seed's
    ``Serial(Embedding, Mean(axis=1), Dense, LogSoftmax)``. ``ngram_order`` > 1 adds ids of runs of
    adjacent tokens hashed into ``ngram_buckets`` extra embeddings (fastText's trick); ``pooling="masked_mean"`` averages only real tokens, so
    the padding a length bucket adds does not shrink the text's vector; ``pooling="attention"`` learns
    a score per token and averages with softmax weights over real tokens, so telling words count more.
    ``dropout`` zeroes embedding features while training, against overfitting a small training set.
    """
    n_ids = vocab_size + (ngram_buckets if ngram_order > 1 else 0)
    embed = [tl.Embedding(n_ids, d_feature), tl.Dropout(rate=dropout, mode=mode) if dropout else []]
    pool = {
        "mean": [embed, tl.Mean(axis=1)],
        "masked_mean": [tl.Branch(embed, None), tl.Fn("MaskedMean", _masked_mean)],
        "attention": [
            tl.Branch(embed, None),                 # embeddings, ids
            tl.Select([0, 0, 1]),
            tl.Parallel(None, tl.Dense(1)),         # embeddings, scores, ids
            tl.Fn("AttentionPool", _attention_pool),
        ],
    }[pooling]
    return tl.Serial(
        _append_ngram_ids(vocab_size, ngram_buckets, ngram_order) if ngram_order > 1 else [],
        pool,
        tl.Dense(n_classes),
        tl.LogSoftmax(),
    )


def model(params, mode="train"):
    return TopicClassifier(n_classes=len(LABELS), mode=mode, **params["model"])


def loss(params):
    return tl.WeightedCategoryCrossEntropy()


def eval_metrics(params):
    return cross_entropy_metrics()


# ---- batches --------------------------------------------------------------------------------------

def _examples(tokens, split):
    sequences, columns = load_sequences(tokens / f"{split}.npz")
    return Zipped(sequences, columns["labels"])


def training_batches(params, tokens, split, seed):
    """The seed's pipeline: Shuffle, FilterByLength, BucketByLength, AddLossWeights, endlessly."""
    batching = params["train"]
    pipeline = trax.data.Serial(
        compat.Shuffle(seed=seed),
        trax.data.FilterByLength(batching["max_length"], length_keys=[0]),
        trax.data.BucketByLength(batching["bucket_boundaries"], batching["bucket_batch_sizes"], length_keys=[0]),
        trax.data.AddLossWeights(),
    )
    return pipeline(endless_shuffled(_examples(tokens, split), seed))


# ---- evaluation -----------------------------------------------------------------------------------

LENGTH_STEP = 8  # batches are padded to a multiple of this: each new length compiles the classifier anew


def length_step_for(model_params):
    """How finely batches' lengths vary: LENGTH_STEP, except for the seed's plain mean, which averages the
    padding too, so that its batches keep their longest text's length, as in training."""
    return 1 if model_params.get("pooling", "mean") == "mean" else LENGTH_STEP


def predict_log_probs(classifier, sequences, batch_size, length_step=1):
    log_probs = np.zeros((len(sequences), len(LABELS)), dtype=np.float32)
    batches = PaddedBatches(sequences, batch_size, length_step)
    for indices, batch in tqdm(batches, desc="evaluating", unit=" batches"):
        log_probs[indices] = np.asarray(classifier(batch))
    return log_probs


def evaluate(params, classifier, tokens):
    """Score the whole test split: loss, accuracy, macro-F1, per-class P/R/F1, confusion rows."""
    sequences, columns = load_sequences(tokens / "test.npz")
    labels = columns["labels"]
    log_probs = predict_log_probs(layers.compiled(classifier), sequences, params["evaluate"]["batch_size"],
                                  length_step_for(params["model"]))
    predicted = log_probs.argmax(axis=1)
    report = sk_metrics.classification_report(labels, predicted, labels=range(len(LABELS)), target_names=LABELS,
                                              output_dict=True, zero_division=0)
    results = {
        "test_examples": len(labels),
        "loss": float(-log_probs[np.arange(len(labels)), labels].mean()),
        "accuracy": float(sk_metrics.accuracy_score(labels, predicted)),
        "macro_f1": float(sk_metrics.f1_score(labels, predicted, average="macro")),
        "per_class": {name: {key: report[name][key] for key in ("precision", "recall", "f1-score")}
                      for name in LABELS},
    }
    confusion = [{"actual": LABELS[a], "predicted": LABELS[p]} for a, p in zip(labels, predicted)]
    return results, {"confusion.json": confusion}


def describe_data(raw, filtered):
    """What the numbers were computed on, copied into the metrics so a subset is never mistaken for full data."""
    source, counts = read_json(raw / "source.json"), read_json(filtered / "stats.json")
    # Records written before "pinned" existed all came from pinned sources.
    pinned = source.get("pinned", True)
    return {
        "source": source["source"],
        "pinned_source": pinned,
        **({} if pinned else {"sha256": {split: record["sha256"] for split, record in source["splits"].items()}}),
        "fields": counts["fields"],
        **{f"{split}_rows": counts[split]["kept"] for split in FILTERED_SPLITS},
        "train_is_subset": bool(source["splits"]["train"].get("subset")) or
        counts["train"]["rows_sampled"] < counts["train"]["rows_read"],
    }


# ---- serving --------------------------------------------------------------------------------------

def served_model(params, classifier):
    """What the export stage writes for `seqnlp classify`: the classifier, on a batch of id sequences."""
    return classifier, [("batch, length", np.int32)], []
