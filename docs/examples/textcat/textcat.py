"""Text classification on your own files: `label TAB text` lines in, one of params.yaml's labels out.

The example task of docs/adding-a-task.md: the functions of seqnlp.contract.Task, and nothing more.
"""

import collections
import json

import numpy as np
from tqdm import tqdm

from seqnlp.artifacts import load_sequences, read_json, save_sequences, write_json
from seqnlp.batching import PaddedBatches, Zipped, endless_shuffled
from seqnlp.errors import DataError
from seqnlp.lazy import LazyModule, trax_module
from seqnlp.sources import copy_local, local_file
from seqnlp.tasks import cross_entropy_metrics

sk_metrics = LazyModule("sklearn.metrics")
trax = trax_module()
tl = trax_module("trax.layers")

SPLITS = ("train", "test")
FILTERED_SPLITS = ("train", "valid", "test")
VOCAB_FILE, PADDING, UNKNOWN = "vocab.json", 0, 1


def download(params, out):
    """Your files, parsed where they are (an error names your file and line), then copied."""
    record = {"source": "local", "pinned": False, "splits": {}}
    for split in SPLITS:
        source = local_file(params["local"][split], f"textcat.download.local.{split}", pinned=False)
        record["splits"][split] = {**copy_local(source, out / f"{split}.tsv"), "rows": len(read_tsv(source))}
    return record


def read_tsv(path):
    rows = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            label, tab, text = line.rstrip("\n").partition("\t")
            if not tab or not label.strip() or not text.strip():
                raise DataError(path, f"expected `label TAB text`, found {line.rstrip()[:60]!r}", number)
            rows.append((label.strip(), text.strip(), number))
    if not rows:
        raise DataError(path, "no `label TAB text` line")
    return rows


def filter(params, raw, out):
    labels, stats = params["labels"], {}
    kept = {}
    for split in SPLITS:
        path = raw / f"{split}.tsv"
        rows = read_tsv(path)
        unknown = [(label, number) for label, _, number in rows if label not in labels]
        if unknown:
            label, number = unknown[0]
            raise DataError(path, f"label {label!r} is not one of filter.labels {labels}", number)
        texts = [(labels.index(label), text.lower() if params["lowercase"] else text) for label, text, _ in rows]
        kept[split] = texts
    order = np.random.default_rng(params["seed"]).permutation(len(kept["train"]))
    n_valid = max(1, round(len(order) * params["validation_fraction"]))
    kept["valid"] = [kept["train"][i] for i in sorted(order[:n_valid])]
    kept["train"] = [kept["train"][i] for i in sorted(order[n_valid:])]
    for split, rows in kept.items():
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as lines:
            lines.writelines(json.dumps({"label": label, "text": text}) + "\n" for label, text in rows)
        counts = collections.Counter(label for label, _ in rows)
        stats[split] = {"kept": len(rows), "per_label": {labels[i]: counts[i] for i in range(len(labels))}}
    return stats


def words(text):
    return text.split()


def tokenize(params, filtered, out):
    rows = {split: [json.loads(line) for line in open(filtered / f"{split}.jsonl", encoding="utf-8")]
            for split in FILTERED_SPLITS}
    counts = collections.Counter(word for row in rows["train"] for word in words(row["text"]))
    vocabulary = {word: index for index, (word, _) in
                  enumerate(counts.most_common(params["vocab_size"] - 2), start=UNKNOWN + 1)}
    write_json(out / VOCAB_FILE, vocabulary)
    stats = {"vocab_size": len(vocabulary) + 2}
    for split, split_rows in rows.items():
        sequences = [np.array([vocabulary.get(word, UNKNOWN) for word in words(row["text"])] or [UNKNOWN], np.int64)
                     for row in tqdm(split_rows, desc=f"encoding {split}", unit=" texts")]
        save_sequences(out / f"{split}.npz", sequences, labels=np.array([row["label"] for row in split_rows], np.int32))
        stats[split] = {"texts": len(sequences), "max_length": max(map(len, sequences))}
    return stats


def model(params, mode="train"):
    settings = params["model"]
    return tl.Serial(tl.Embedding(params["tokenize"]["vocab_size"], settings["d_feature"]), tl.Mean(axis=1),
                     tl.Dense(len(params["filter"]["labels"])), tl.LogSoftmax())


def loss(params):
    return tl.WeightedCategoryCrossEntropy()


def eval_metrics(params):
    return cross_entropy_metrics()


def training_batches(params, tokens, split, seed):
    sequences, columns = load_sequences(tokens / f"{split}.npz")
    settings = params["train"]
    pipeline = trax.data.Serial(
        trax.data.BucketByLength(settings["bucket_boundaries"], settings["bucket_batch_sizes"], length_keys=[0]),
        trax.data.AddLossWeights())
    return pipeline(endless_shuffled(Zipped(sequences, columns["labels"]), seed))


def evaluate(params, classifier, tokens):
    labels_named = params["filter"]["labels"]
    sequences, columns = load_sequences(tokens / "test.npz")
    labels = columns["labels"]
    log_probs = np.zeros((len(sequences), len(labels_named)), np.float32)
    for indices, batch in PaddedBatches(sequences, params["evaluate"]["batch_size"]):
        log_probs[indices] = np.asarray(classifier(batch))
    predicted = log_probs.argmax(axis=1)
    results = {"test_examples": len(labels), "accuracy": float(sk_metrics.accuracy_score(labels, predicted)),
               "macro_f1": float(sk_metrics.f1_score(labels, predicted, average="macro"))}
    confusion = [{"actual": labels_named[a], "predicted": labels_named[p]} for a, p in zip(labels, predicted)]
    return results, {"confusion.json": confusion}


def describe_data(raw, filtered):
    source, counts = read_json(raw / "source.json"), read_json(filtered / "stats.json")
    return {"source": source["source"], "pinned_source": False,
            "sha256": {split: record["sha256"] for split, record in source["splits"].items()},
            **{f"{split}_rows": counts[split]["kept"] for split in FILTERED_SPLITS}}


def served_model(params, classifier):
    return classifier, [("batch, length", np.int32)], []
