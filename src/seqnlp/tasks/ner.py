"""Named-entity recognition: a sentence's words in, one IOB2 tag per word out (week 3 of the seed).

One module serves every corpus in the same shape (GMB's CSV, CoNLL-2003's column files); each corpus is
its own branch of the pipeline, chosen by ``download.corpus`` in its params section.
"""

import csv
import gzip
import hashlib
import io
import json
import re
import urllib.request
import zipfile
import zlib
from collections import Counter

import numpy as np
from tqdm import tqdm

from seqnlp.artifacts import load_sequences, read_json, save_arrays, save_sequences, write_json
from seqnlp.batching import PaddedBatches, Zipped, endless_shuffled
from seqnlp.errors import DataError, SourceUnavailable, UserError
from seqnlp.lazy import LazyModule, trax_module
from seqnlp.sources import copy_local, copy_verified, local_file, mirror_directory

seqeval_metrics = LazyModule("seqeval.metrics")
seqeval_scheme = LazyModule("seqeval.scheme")
layers = trax_module("seqnlp.layers")
compat = trax_module("seqnlp.compat")
trax = trax_module()
tl = trax_module("trax.layers")

PAD, UNK = 0, 1
SPLITS = ("train", "valid", "test")
ENTITY_TYPES = {
    "gmb": ("art", "eve", "geo", "gpe", "nat", "org", "per", "tim"),
    "conll2003": ("LOC", "MISC", "ORG", "PER"),
}


def tag_names(corpus):
    """O first, then B- and I- of each entity type: the model's output classes, in order."""
    return ["O"] + [f"{prefix}-{kind}" for kind in ENTITY_TYPES[corpus] for prefix in "BI"]


# ---- download -------------------------------------------------------------------------------------

# Each corpus file: the name the raw stage stores, the mirror path and its sha256, and the upstream URL
# (pinned to a commit) with the sha256 of the file it serves.
GMB_URL = ("https://raw.githubusercontent.com/codingtime123/Named-Entity-Recognition-with-NLP/"
           "bae7eccc99b1ca894587a959e3d1a707d7f0853a/ner_dataset.csv.zip")
CONLL_URL = "https://raw.githubusercontent.com/suryasumukh/conll-ner/18d3e43a09247adaa9ec088485a087d5ffa758a6/data/"
SOURCES = {
    "gmb": {
        "ner_dataset.csv.gz": ("ner/ner_dataset.csv.gz",
                               "4c91123c17b1a10a5e4160a3446196b2cf722e6b86730d83287510ef5e5ba03f",
                               GMB_URL, "83257dd94ed59596809dc9f5b28f1f035c9d925d5a647f266db43a2f098e8f1a"),
    },
    "conll2003": {
        "train.gz": ("conll2003/eng.train.gz", "042759a7f725d1b3349b083f473bba5990b8e814c71c63b771e6d5b97191d975",
                     CONLL_URL + "eng.train", "eac0822f501353f265383ddf1edb0dcd42a1b6eefd3e383d7074db98c38eb41c"),
        "valid.gz": ("conll2003/eng.testa.gz", "06b824b163e1d2ce8dccf9dc5e6acb40d1f4d337f98fcb6ee9178687e829d966",
                     CONLL_URL + "eng.testa", "aedc4ccbd1ae9795feaa0e86fe72d195b0258abed9d705b630d1c889276fac1e"),
        "test.gz": ("conll2003/eng.testb.gz", "c9e7166a9dbf1808ace69ab33af6b1ea9aea22a5ce0516c2ce2a843f877b896a",
                    CONLL_URL + "eng.testb", "0632f32c090ef31c223135b7fee3187a7cf8e65c4015c7866bb7783428cdd9a6"),
    },
}


def download(params, out):
    corpus = params["corpus"]
    if params["local"] is not None:
        record = {"source": "local", "pinned": False, "corpus": corpus, "files": {}}
        for split, name in _stored_names(corpus).items():
            source = local_file(params["local"][split], f"download.local.{split}")
            record["files"][name] = copy_local(source, out / name)
        return record
    mirror = mirror_directory()
    record = {"source": "mirror" if mirror else "upstream", "pinned": True, "corpus": corpus, "files": {}}
    for name, (relative, sha256, url, inner_sha256) in SOURCES[corpus].items():
        if mirror is not None:
            record["files"][name] = copy_verified(mirror / relative, sha256, out / name)
        else:
            record["files"][name] = _fetch(url, inner_sha256, out / name)
    return record


def _stored_names(corpus):
    """split -> the name the raw stage stores that split's file under (GMB is one file, split by filter)."""
    return {"train": "ner_dataset.csv.gz"} if corpus == "gmb" else {split: f"{split}.gz" for split in SPLITS}


def _fetch(url, expected_sha256, destination):
    """Download ``url`` (unzipping a one-member .zip), check its sha256 and store it gzipped."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            payload = response.read()
    except OSError as error:
        raise SourceUnavailable(url, str(error)) from None
    if url.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            payload = archive.read(archive.namelist()[0])
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected_sha256:
        raise DataError(url, f"sha256 is {actual}, expected {expected_sha256}: not the published file")
    with open(destination, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as stream:
        stream.write(payload)
    return {"url": url, "sha256": expected_sha256, "bytes": len(payload)}


# ---- reading --------------------------------------------------------------------------------------

def _read_text(path, encoding):
    try:
        with gzip.open(path) as stream:
            raw = stream.read()
    except (EOFError, OSError, zlib.error) as error:
        raise DataError(path, f"cannot read the file ({error})") from None
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(path, f"undecodable bytes ({error.reason}); expected {encoding} text", line) from None


def _check_tag(path, line, tag, known):
    if tag not in known:
        raise DataError(path, f"unknown tag {tag!r}; expected one of {', '.join(sorted(known))}", line)


def read_gmb(path):
    """Sentences of (words, IOB2 tags) from the Kaggle GMB CSV: latin-1, CRLF, ``Sentence #`` on first words."""
    known = set(tag_names("gmb"))
    reader = csv.reader(io.StringIO(_read_text(path, "latin-1"), newline=""))
    sentences = []
    try:
        header = next(reader, None)
        if header != ["Sentence #", "Word", "POS", "Tag"]:
            raise DataError(path, f"expected the header Sentence #,Word,POS,Tag, found {header}", 1)
        for row in reader:
            line = reader.line_num
            if len(row) != 4:
                raise DataError(path, f"expected 4 fields (Sentence #,Word,POS,Tag), found {len(row)}", line)
            sentence, word, _, tag = row
            _check_tag(path, line, tag, known)
            if sentence.strip():
                sentences.append(([], []))
            elif not sentences:
                raise DataError(path, "the first row has no sentence number", line)
            if not word:
                raise DataError(path, "empty word", line)
            sentences[-1][0].append(word)
            sentences[-1][1].append(tag)
    except csv.Error as error:
        raise DataError(path, f"malformed CSV: {error}", reader.line_num) from None
    if not sentences:
        raise DataError(path, "no sentences; expected rows of Sentence #,Word,POS,Tag")
    return sentences


def iob1_to_iob2(tags):
    """IOB1 (an entity starts with I-, B- only between two same-type entities) to IOB2 (every entity starts B-)."""
    converted = []
    for index, tag in enumerate(tags):
        previous = tags[index - 1] if index else "O"
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        converted.append(tag)
    return converted


def read_conll(path):
    """Sentences of (words, IOB2 tags) from a CoNLL-2003 file (``word POS chunk NER``, IOB1); no -DOCSTART-."""
    known = {"O"} | {f"{prefix}-{kind}" for kind in ENTITY_TYPES["conll2003"] for prefix in "BI"}
    sentences, words, tags = [], [], []
    for line_number, line in enumerate(_read_text(path, "utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if words:
                sentences.append((words, iob1_to_iob2(tags)))
                words, tags = [], []
            continue
        if len(fields) != 4:
            raise DataError(path, f"expected 4 columns (word POS chunk NER), found {len(fields)}", line_number)
        _check_tag(path, line_number, fields[3], known)
        words.append(fields[0])
        tags.append(fields[3])
    if words:
        sentences.append((words, iob1_to_iob2(tags)))
    if not sentences:
        raise DataError(path, "no sentences; expected lines of `word POS chunk NER`")
    return sentences


# ---- filtering ------------------------------------------------------------------------------------

def _split_sentences(sentences, fractions, seed):
    order = np.random.default_rng(seed).permutation(len(sentences))
    n_valid, n_test = (round(len(sentences) * fractions[split]) for split in ("valid", "test"))
    cuts = {"valid": order[:n_valid], "test": order[n_valid:n_valid + n_test], "train": order[n_valid + n_test:]}
    return {split: [sentences[i] for i in sorted(cuts[split])] for split in SPLITS}


def filter(params, raw, out):
    corpus = read_json(raw / "source.json")["corpus"]
    if corpus == "gmb":
        splits = _split_sentences(read_gmb(raw / "ner_dataset.csv.gz"), params["split"], params["seed"])
    else:
        splits = {split: read_conll(raw / f"{split}.gz") for split in SPLITS}
    stats = {"corpus": corpus}
    for split, sentences in splits.items():
        limit = params["max_sentences"][split]
        if limit is not None and limit < len(sentences):
            keep = np.random.default_rng(params["seed"]).choice(len(sentences), size=limit, replace=False)
            sentences = [sentences[i] for i in sorted(keep)]
        if not sentences:
            raise UserError(f"the {split} split is empty; check filter.split in params.yaml")
        with open(out / f"{split}.jsonl", "w") as stream:
            for words, tags in sentences:
                stream.write(json.dumps({"words": words, "tags": tags}, ensure_ascii=False) + "\n")
        entities = Counter(tag[2:] for _, tags in sentences for tag in tags if tag.startswith("B-"))
        stats[split] = {"sentences": len(sentences), "sampled": limit is not None and limit < len(splits[split]),
                        "tokens": sum(len(words) for words, _ in sentences),
                        "longest_sentence": max(len(words) for words, _ in sentences),
                        "entities": dict(sorted(entities.items()))}
    return stats


def read_filtered(path):
    with open(path) as stream:
        return [(record["words"], record["tags"]) for record in map(json.loads, stream)]


# ---- tokenizing -----------------------------------------------------------------------------------

_DIGITS = re.compile(r"\d")


def normalise(word):
    """The word-embedding key: lower case, every digit 0 (the character features keep case and digits)."""
    return _DIGITS.sub("0", word.lower())


def char_ids(word, width):
    """Character codes (1 for characters beyond Latin-1) of the word's first ``width`` characters, 0-padded."""
    codes = [ord(char) if ord(char) < 256 else UNK for char in word[:width]]
    return codes + [PAD] * (width - len(codes))


class Vocabulary:
    """Words of the training split (most frequent first) and the surface forms seen anywhere."""

    def __init__(self, words, tags, char_width):
        self.words, self.tags, self.char_width = list(words), list(tags), char_width
        self._word_ids = {word: index for index, word in enumerate(self.words)}
        self._tag_ids = {tag: index for index, tag in enumerate(self.tags)}

    @classmethod
    def build(cls, sentences, size, tags, char_width):
        counts = Counter(normalise(word) for words, _ in sentences for word in words)
        kept = [word for word, _ in counts.most_common(size - 2)]
        return cls(["<pad>", "<unk>", *kept], tags, char_width)

    def word_id(self, word):
        return self._word_ids.get(normalise(word), UNK)

    def tag_ids(self, tags):
        return [self._tag_ids[tag] for tag in tags]

    def save(self, path):
        write_json(path, {"words": self.words, "tags": self.tags, "char_width": self.char_width})

    @classmethod
    def load(cls, path):
        stored = read_json(path)
        return cls(stored["words"], stored["tags"], stored["char_width"])


class Forms:
    """Each distinct surface form gets an id; its word id and character ids are looked up per batch.

    Sentences store form ids, so a word unseen in training keeps its characters while its word id is UNK.
    """

    def __init__(self, vocabulary):
        self.vocabulary = vocabulary
        self._ids = {"": PAD}
        self.word_ids, self.char_ids = [PAD], [[PAD] * vocabulary.char_width]

    def ids(self, words):
        for word in words:
            if word not in self._ids:
                self._ids[word] = len(self.word_ids)
                self.word_ids.append(self.vocabulary.word_id(word))
                self.char_ids.append(char_ids(word, self.vocabulary.char_width))
        return [self._ids[word] for word in words]

    def tables(self):
        return np.array(self.word_ids, np.int32), np.array(self.char_ids, np.int32)


VOCAB_FILE, FORMS_FILE = "vocab.json", "forms.npz"


def tokenize(params, filtered, out):
    corpus = read_json(filtered / "stats.json")["corpus"]
    sentences = {split: read_filtered(filtered / f"{split}.jsonl") for split in SPLITS}
    vocabulary = Vocabulary.build(sentences["train"], params["vocab_size"], tag_names(corpus), params["char_width"])
    vocabulary.save(out / VOCAB_FILE)
    forms = Forms(vocabulary)
    stats = {"vocab_size": len(vocabulary.words)}
    for split, split_sentences in sentences.items():
        encoded = [forms.ids(words) for words, _ in tqdm(split_sentences, desc=f"encoding {split}", unit=" sentences")]
        tags = [vocabulary.tag_ids(tags) for _, tags in split_sentences]
        save_sequences(out / f"{split}.npz", encoded)
        save_sequences(out / f"{split}_tags.npz", tags)
        word_ids = forms.tables()[0][np.concatenate(encoded)]
        stats[split] = {"sentences": len(encoded), "tokens": int(word_ids.size),
                        "unknown_word_rate": round(float((word_ids == UNK).mean()), 4)}
    word_table, char_table = forms.tables()
    save_arrays(out / FORMS_FILE, {"word_ids": word_table, "char_ids": char_table})
    stats["forms"] = len(word_table)
    return stats


def _load_split(tokens, split):
    forms, _ = load_sequences(tokens / f"{split}.npz")
    tags, _ = load_sequences(tokens / f"{split}_tags.npz")
    return forms, tags


def _form_tables(tokens):
    with np.load(tokens / FORMS_FILE) as stored:
        return stored["word_ids"], stored["char_ids"]


# ---- model ----------------------------------------------------------------------------------------

def _max_over_characters(features, chars):
    return (features * (chars > 0)[..., None]).max(axis=2)


def CharacterFeatures(d_char, n_filters, width):
    """Character ids (batch, words, chars) -> (batch, words, n_filters): a char CNN with max pooling per word."""
    return tl.Serial(
        tl.Branch([tl.Embedding(256, d_char), tl.Conv(n_filters, (1, width), padding="SAME"), tl.Relu()], None),
        tl.Fn("MaxOverCharacters", _max_over_characters),
    )


def Tagger(n_tags, vocab_size, d_word=100, d_hidden=100, bidirectional=True, char_features=True, d_char=25,
           char_filters=50, char_kernel=3, dropout=0.5, crf=True, allowed=None, mode="train"):
    """Word ids (and character ids) -> per-word tag scores.

    With every option off this is the seed's ``Serial(Embedding, LSTM, Dense, LogSoftmax)``. On top of
    it: character features, so an unseen word is more than UNK; a bidirectional LSTM, so a tag sees the
    words after it; dropout; and a linear-chain CRF, which scores whole tag paths (``allowed`` keeps it
    to valid IOB2 paths).
    """
    features = [tl.Parallel(tl.Embedding(vocab_size, d_word), CharacterFeatures(d_char, char_filters, char_kernel)),
                tl.Concatenate()] if char_features else tl.Embedding(vocab_size, d_word)
    if bidirectional:  # the backward LSTM needs the word ids to find where each sentence ends
        features = tl.Branch(features, tl.Select([0], n_in=2 if char_features else 1))
    drop = tl.Dropout(rate=dropout, mode=mode) if dropout else []
    # trax's LSTM keeps a state as wide as its input, so its input is projected to d_hidden first
    project = [] if not char_features and d_word == d_hidden else tl.Dense(d_hidden)
    return tl.Serial(
        features,
        drop,
        project,
        layers.BidirectionalLSTM(d_hidden, mode=mode) if bidirectional else tl.LSTM(d_hidden, mode=mode),
        drop,
        tl.Dense(n_tags),
        layers.CRF(n_tags, allowed=allowed) if crf else tl.LogSoftmax(),
    )


def model(params, mode="train"):
    tags = tag_names(params["download"]["corpus"])
    settings = {key: value for key, value in params["model"].items() if key != "word_dropout"}
    allowed = layers.iob2_allowed_transitions(tags) if settings.get("crf") else None
    return Tagger(len(tags), params["tokenize"]["vocab_size"], allowed=allowed, mode=mode, **settings)


def loss(params):
    return layers.CRFLoss() if params["model"]["crf"] else tl.WeightedCategoryCrossEntropy()


def _decoded_accuracy(potentials, targets, weights):
    decoded = layers.viterbi_decode(potentials, weights)
    return (((decoded == targets) * weights).sum() / trax.fastmath.numpy.maximum(weights.sum(), 1.0))


def eval_metrics(params):
    if params["model"]["crf"]:
        return {"CRFLoss": layers.CRFLoss(), "Accuracy": tl.Fn("DecodedAccuracy", _decoded_accuracy)}
    return {"CrossEntropy": tl.WeightedCategoryCrossEntropy(), "Accuracy": tl.WeightedCategoryAccuracy()}


# ---- batches --------------------------------------------------------------------------------------

def _model_inputs(params, tokens, word_dropout=0.0, seed=0):
    """A trax.data step: (forms, tags, weights) batches -> the model's inputs, tags and weights.

    ``word_dropout`` reads that fraction of words as UNK (their characters stay), so the UNK embedding
    is trained: every training word is in the vocabulary, but 6-8% of test words are not.
    """
    word_table, char_table = _form_tables(tokens)
    with_chars = params["model"]["char_features"]
    generator = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))

    def lookup(batches):
        for forms, tags, weights in batches:
            words = word_table[forms]
            if word_dropout:
                words = np.where((generator.random(words.shape) < word_dropout) & (words > PAD), UNK, words)
            yield (words, char_table[forms], tags, weights) if with_chars else (words, tags, weights)
    return lookup


def _add_padding_weights(batches):
    """Weights 1 on words, 0 on padding (AddLossWeights would mask by tag id, and tag 0 is O, not padding)."""
    for forms, tags in batches:
        yield forms, tags, (forms > PAD).astype(np.float32)


def training_batches(params, tokens, split, seed):
    """Sentences bucketed by length, padding masked out of the loss, endlessly."""
    batching = params["train"]
    forms, tags = _load_split(tokens, split)
    pipeline = trax.data.Serial(
        compat.Shuffle(seed=seed),
        trax.data.BucketByLength(batching["bucket_boundaries"], batching["bucket_batch_sizes"], length_keys=[0]),
        _add_padding_weights,
        _model_inputs(params, tokens, params["model"]["word_dropout"] if split == "train" else 0.0, seed),
    )
    return pipeline(endless_shuffled(Zipped(forms, tags), seed))


# ---- evaluation -----------------------------------------------------------------------------------

def _best_tags(scores, mask):
    return trax.fastmath.numpy.argmax(scores, axis=-1)


def Decoder(tagger, crf):
    """(word ids[, character ids], mask) -> tag ids (batch, words): the tagger's scores decoded, by Viterbi
    with a CRF, else tag by tag; 0 at padded positions with a CRF."""
    return tl.Serial(tagger, layers.CRFDecode() if crf else tl.Fn("BestTags", _best_tags))


MIN_WORDS = 2  # Viterbi scans the positions after the first, and an exported scan needs one: pad to two
LENGTH_STEP = 8  # batches are padded to a multiple of this: each new length compiles the tagger anew (~70 MB)


def predict(params, decoder, forms, word_table, char_table, batch_size, desc="tagging"):
    """Tag ids per sentence (lists the sentences' lengths), by ``decoder`` (see :func:`Decoder`)."""
    predicted, batches = [None] * len(forms), PaddedBatches(forms, batch_size, LENGTH_STEP)
    for indices, batch in tqdm(batches, desc=desc, unit=" batches", leave=False):
        batch = np.pad(batch, ((0, 0), (0, max(MIN_WORDS - batch.shape[1], 0))))
        inputs = (word_table[batch], char_table[batch]) if params["model"]["char_features"] else (word_table[batch],)
        best = np.asarray(decoder((*inputs, (batch > 0).astype(np.float32))))
        for row, index in enumerate(indices):
            predicted[index] = best[row, : batches.lengths[index]]
    return predicted


def entity_spans(tags):
    """(type, start, end) of each IOB2 entity."""
    found, start, kind = [], None, None
    for index, tag in enumerate([*tags, "O"]):
        if start is not None and not (tag.startswith("I-") and tag[2:] == kind):
            found.append((kind, start, index))
            start = None
        if tag.startswith("B-") or (tag.startswith("I-") and start is None):
            start, kind = index, tag[2:]
    return found


def entity_confusion(gold, predicted):
    """Rows {actual, predicted} per gold entity (its predicted type on the same span, or O) and per
    predicted entity with no gold entity on its span (actual O)."""
    rows = []
    for gold_tags, predicted_tags in zip(gold, predicted):
        gold_spans = {(start, end): kind for kind, start, end in entity_spans(gold_tags)}
        predicted_spans = {(start, end): kind for kind, start, end in entity_spans(predicted_tags)}
        rows += [{"actual": kind, "predicted": predicted_spans.get(span, "O")} for span, kind in gold_spans.items()]
        rows += [{"actual": "O", "predicted": kind} for span, kind in predicted_spans.items() if span not in gold_spans]
    return rows


def score(gold, predicted):
    """Token accuracy and strict IOB2 entity-level precision, recall and F1 (micro and per type)."""
    tokens = sum(len(tags) for tags in gold)
    correct = sum(g == p for gold_tags, predicted_tags in zip(gold, predicted)
                  for g, p in zip(gold_tags, predicted_tags))
    report = seqeval_metrics.classification_report(gold, predicted, mode="strict", scheme=seqeval_scheme.IOB2,
                                                   output_dict=True, zero_division=0)
    return {
        "sentences": len(gold),
        "tokens": tokens,
        "token_accuracy": correct / tokens,
        "precision": float(report["micro avg"]["precision"]),
        "recall": float(report["micro avg"]["recall"]),
        "f1": float(report["micro avg"]["f1-score"]),
        "per_type": {kind: {"precision": float(values["precision"]), "recall": float(values["recall"]),
                            "f1": float(values["f1-score"]), "support": int(values["support"])}
                     for kind, values in report.items() if not kind.endswith(" avg")},
    }


def evaluate(params, tagger, tokens):
    """Token accuracy and entity-level P/R/F1 on the validation and test splits; entity confusion on test."""
    vocabulary = Vocabulary.load(tokens / VOCAB_FILE)
    word_table, char_table = _form_tables(tokens)
    decoder = layers.compiled(Decoder(tagger, params["model"]["crf"]))
    results, plots = {}, {}
    for split in ("test", "valid"):
        forms, tags = _load_split(tokens, split)
        predicted = predict(params, decoder, forms, word_table, char_table, params["evaluate"]["batch_size"],
                            desc=f"tagging {split}")
        gold_names = [[vocabulary.tags[i] for i in row] for row in tags]
        predicted_names = [[vocabulary.tags[i] for i in row] for row in predicted]
        results[split] = score(gold_names, predicted_names)
        if split == "test":
            plots["entity_confusion.json"] = entity_confusion(gold_names, predicted_names)
    results.update({key: results["test"][key] for key in ("token_accuracy", "precision", "recall", "f1")})
    return results, plots


def describe_data(raw, filtered):
    source, counts = read_json(raw / "source.json"), read_json(filtered / "stats.json")
    described = {"source": source["source"], "pinned_source": source["pinned"], "corpus": source["corpus"],
                 **{f"{split}_sentences": counts[split]["sentences"] for split in SPLITS},
                 "is_subset": any(counts[split]["sampled"] for split in SPLITS)}
    if not source["pinned"]:
        described["sha256"] = {name: record["sha256"] for name, record in source["files"].items()}
    return described


# ---- serving --------------------------------------------------------------------------------------

def served_model(params, tagger):
    """What the export stage writes for `seqnlp tag`: the tagger with its decoding (see :func:`Decoder`)."""
    words = [("batch, words", np.int32)]
    characters = [("batch, words, characters", np.int32)] if params["model"]["char_features"] else []
    return (Decoder(tagger, params["model"]["crf"]), words + characters + [("batch, words", np.float32)],
            [f"words >= {MIN_WORDS}"])


_TOKEN = re.compile(r"""
      (?:[A-Z]\.){2,}                       # initialisms: U.S., U.N.
    | (?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|Gen|Sen|Rep|Gov|Lt|Col|Sgt|Capt|Inc|Corp|Ltd|Co|vs)\.   # abbreviations
    | \d+(?:[.,:]\d+)*                      # numbers, times, 1,000.5
    | '(?:s|re|ve|ll|d|m)\b | n't           # clitics are tokens of their own, as in both corpora
    | \w+(?:[-&]\w+)*(?=n't)                # "did" of "didn't"
    | \w+(?:(?:[-&]|'(?!(?:s|re|ve|ll|d|m)\b))\w+)*   # words, with inner hyphens and apostrophes (O'Brien)
    | \S                                    # any other character: punctuation
""", re.VERBOSE | re.IGNORECASE)


def split_words(text):
    """Split raw text into tokens the way the corpora are: punctuation and clitics separated."""
    return _TOKEN.findall(text)


def tag_sentences(params, decoder, tokens, texts):
    """[(words, tags, entities)] for each text, by ``decoder`` (see :func:`Decoder`); entities are (type,
    words) in order."""
    vocabulary = Vocabulary.load(tokens / VOCAB_FILE)
    forms = Forms(vocabulary)
    sentences = [split_words(text) for text in texts]
    if not any(sentences):
        raise UserError("nothing to tag: the input has no words")
    encoded = [forms.ids(words) for words in sentences if words]
    word_table, char_table = forms.tables()
    predicted = iter(predict(params, decoder, encoded, word_table, char_table, params["evaluate"]["batch_size"]))
    tagged = []
    for words in sentences:
        tags = [vocabulary.tags[i] for i in next(predicted)] if words else []
        entities = [(kind, " ".join(words[start:end])) for kind, start, end in entity_spans(tags)]
        tagged.append((words, tags, entities))
    return tagged
